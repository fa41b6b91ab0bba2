#!/bin/bash
# Format variants of the busybox image (DEP_BUSYBOX), inputs a reader must accept:
#   busybox-zstd    OCI layout, layers re-compressed as application/vnd.oci.image.layer.v1.tar+zstd
#   busybox-v2s2    OCI layout holding a Docker v2 schema 2 manifest and Docker media types
#   busybox-index2  OCI layout whose index.json points at an OCI image INDEX with two platforms: linux/amd64 (the
#                   busybox image) and linux/arm64/v8 (a real aarch64 busybox from Debian's busybox-static:arm64,
#                   runs under qemu-aarch64-static)
RIG_NAME=$1 OUT=$2
. "$(dirname "$0")/lib.sh"
SRC=${DEP_BUSYBOX:?}
case $RIG_NAME in
busybox-zstd) skopeo copy -q --dest-compress-format zstd "oci:$SRC:latest" "oci:$OUT:latest" ;;
busybox-v2s2) skopeo copy -q --format v2s2 "oci:$SRC:latest" "oci:$OUT:latest" ;;
busybox-index2)
  progress "fetching busybox-static:arm64"
  mapfile -t MIRRORS <<<"$RIG_MIRRORS"
  mmdebstrap --quiet --variant=extract --architectures=arm64 --include=busybox-static bookworm "$W/arm64" "${MIRRORS[@]}"
  busybox_rootfs "$W/root" "$W/arm64/bin/busybox"
  mklayer "$W/root" "$W/arm64.tar"
  ARMVER=$(dpkg-deb -f "$W"/arm64/var/cache/apt/archives/busybox-static_*.deb Version 2>/dev/null || echo unknown)
  new_image "$W/arm"
  add_layer "$W/arm" "$W/arm64.tar" "ADD busybox-rootfs / # busybox-static:arm64 $ARMVER"
  set_config "$W/arm" --architecture arm64 --history.created_by 'CMD ["sh"]' \
    --config.cmd sh --config.env PATH=$BASEPATH --config.workingdir / \
    --config.label org.opencontainers.image.title=busybox
  finish "$W/arm"
  # one layout with both images' blobs, then an image index over the two manifests
  skopeo copy -q "oci:$SRC:latest" "oci:$OUT:amd64"
  skopeo copy -q "oci:$W/arm:latest" "oci:$OUT:arm64"
  python3 - "$OUT" <<'PY'
import hashlib, json, os, sys
out = sys.argv[1]
idx = json.load(open(os.path.join(out, "index.json")))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
plat = {"amd64": {"architecture": "amd64", "os": "linux"},
        "arm64": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
manifests = []
for tag in ("amd64", "arm64"):
    d = {k: by_tag[tag][k] for k in ("mediaType", "digest", "size")}
    d["platform"] = plat[tag]
    manifests.append(d)
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
blob = json.dumps(index, separators=(",", ":"), sort_keys=True).encode()
dig = hashlib.sha256(blob).hexdigest()
with open(os.path.join(out, "blobs", "sha256", dig), "wb") as f:
    f.write(blob)
top = {"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + dig, "size": len(blob),
    "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(top, f, separators=(",", ":"), sort_keys=True)
PY
  ;;
*) echo "variants.sh: unknown image $RIG_NAME" >&2; exit 2 ;;
esac
