"""ORAS's side of the OCI interoperability test (tests/e2e/oci.rs), with the ORAS Python SDK
(oras-py) over plain HTTP and Basic auth:

    python oras_interop.py pull HOST USER PASSWORD REF OUTDIR   # what lthost pushed, as ORAS pulls it
    python oras_interop.py push HOST USER PASSWORD REF FILE     # a component pushed by ORAS in the Wasm OCI layout

`pull` prints the files ORAS wrote (named by the layer's `org.opencontainers.image.title`);
`push` pushes FILE as the one `application/wasm` layer with a `application/vnd.wasm.config.v0+json`
config, as `wkg oci push` lays it out, and prints the manifest's digest.
"""

import json
import os
import sys
import tempfile

import oras.client


def client(host, user, password):
    c = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
    c.login(username=user, password=password, hostname=host)
    return c


def main():
    cmd, host, user, password, ref, path = sys.argv[1:7]
    c = client(host, user, password)
    if cmd == "pull":
        print(json.dumps(c.pull(target=ref, outdir=path)))
    elif cmd == "push":
        with tempfile.TemporaryDirectory() as d:
            # oras-py names a layer by its path: push from beside the file.
            os.chdir(os.path.dirname(os.path.abspath(path)))
            config = os.path.join(d, "config.json")
            with open(config, "w") as f:
                json.dump({"architecture": "wasm", "os": "wasip2", "layerDigests": [],
                           "component": {"exports": [], "imports": [], "target": None}}, f)
            r = c.push(target=ref, files=[f"{os.path.basename(path)}:application/wasm"],
                       manifest_config=f"{config}:application/vnd.wasm.config.v0+json", quiet=True)
            r.raise_for_status()
            print(r.headers.get("Docker-Content-Digest"))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
