"""What we serve to real snapd: a store it trusts, running inside the host under test.

snapd built with test keys trusts the `testrootorg` authority, so everything here is signed
with snapd's own test keys (read from its source into the cache dir, never committed or
printed):

- `openpgp`: the OpenPGP v4 packets snapd's assertions use (an armored RSA secret key in,
  the public-key packet, the key id and the signature packet out), RSA by `cryptography`;
- `assertions`: snapd's assertion text form, signed (snap-declaration, snap-revision,
  account-key, account), and a tamperer for the misbehaving store;
- the catalog written for the server, and the stdlib-only server program that runs inside the
  host (bound to 127.0.0.1 there) answering snapd's store requests.

Its store decisions come from `snapconform.model.store`; the harness only carries its files to
the host, by path, and never imports the modules here that import the model.
"""
