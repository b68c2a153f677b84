"""Images: Debian trees, snapd builds (test keys), the offline stand-ins and image recipes.

Host backends use this room to get a tree to boot; it knows nothing of how a tree is booted
(a backend hands the golden recipe a first-boot callback). It imports only snapconform.paths,
its own modules and the error types of snapconform.hosts.base.
"""
