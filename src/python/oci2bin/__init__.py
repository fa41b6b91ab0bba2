"""oci2bin: turn an OCI/Docker image into one self-running executable file.

Package map (data flows one way: source -> Image -> transforms -> Image -> writer):

* ``image/``     model.py (Image, Blob, Platform; digests verified while streaming), layout.py (OCI layout dirs,
                 nested indexes, platform selection), archive.py (docker-archive in all layouts, oci-archive),
                 engine.py (docker/podman save), source.py (IMAGE argument -> Image), fsview.py (flattened
                 filesystem view), sbom.py; remote.py/auth.py/blobcache.py/reference.py: the registry client.
* ``mutate/``    pure Image -> Image transforms: config, add_files, merge, strip, squash, compress, embed_loader;
                 layertar.py writes deterministic layers (diff_id and digest in one pass).
* ``polyglot/``  format.py (docs/format.md constants and byte helpers), writer.py, reader.py, wrapper.py.
* ``cli/``       one module per subcommand; main.py dispatches and turns every UserError into one line.
* ``state/``     the output cache (--cache, list, prune).
"""

__version__ = "0.1.0"
