"""Checks that an image archive carries no trace of a private CA bundle.

  python3 hack/image/check_no_secret.py IMAGE.tar CA-BUNDLE

IMAGE.tar is a docker-archive (or any tar of layer tars with a manifest.json). Every file of every
layer is looked at, so a file added in one layer and deleted in a later one still counts. Fails
(exit 1, paths on stderr) when a file is the bundle byte for byte, or holds any of the bundle's
certificates that are not in the image's own public stores (Debian's ca-certificates under
/usr/share/ca-certificates/mozilla, certifi's cacert.pem): those are the private ones, such as a
TLS-intercepting proxy's CA.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


def bodies(data: bytes) -> set[bytes]:
    return {b"".join(m.group(1).split()) for m in PEM.finditer(data)}


def is_public_store(path: str) -> bool:
    return path.startswith("usr/share/ca-certificates/mozilla/") or path.endswith("certifi/cacert.pem")


def layer_files(archive: tarfile.TarFile):
    names = archive.getnames()
    if "manifest.json" in names:
        layers = json.load(archive.extractfile("manifest.json"))[0]["Layers"]
    else:
        layers = [n for n in names if n.endswith((".tar", "/layer.tar"))]
    for layer in layers:
        with tarfile.open(fileobj=archive.extractfile(layer), mode="r:*") as inner:
            for member in inner:
                if member.isfile():
                    yield layer, member.name.lstrip("./"), inner.extractfile(member).read()


def main(image: str, ca: str) -> int:
    ca_data = open(ca, "rb").read()
    ca_hash = hashlib.sha256(ca_data).digest()
    ca_certs = bodies(ca_data)
    public: set[bytes] = set()
    found: dict[bytes, list[str]] = {}
    leaks: list[str] = []
    with tarfile.open(image) as archive:
        for layer, path, data in layer_files(archive):
            if len(data) == len(ca_data) and hashlib.sha256(data).digest() == ca_hash:
                leaks.append(f"{path} (in {layer}) is the CA bundle itself")
            if b"-----BEGIN CERTIFICATE-----" not in data:
                continue
            certs = bodies(data) & ca_certs
            if is_public_store(path):
                public |= certs
            for cert in certs:
                found.setdefault(cert, []).append(path)
    private = ca_certs - public
    for cert in private & found.keys():
        leaks.append(f"a private certificate of the bundle ({cert[:24].decode()}...) is in {', '.join(found[cert])}")
    for leak in leaks:
        print(f"check_no_secret: {leak}", file=sys.stderr)
    if not leaks:
        print(f"check_no_secret: ok, none of the {len(private)} private certificate(s) of {ca} "
              f"nor the bundle itself is in {image}", file=sys.stderr)
    return 1 if leaks else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
