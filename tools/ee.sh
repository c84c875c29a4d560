#!/usr/bin/env bash
# Build the contexts of residue.purge's two execution environment definitions with `ansible-builder create`
# (no container engine needed; `podman build CONTEXT` or `ansible-builder build` makes the image elsewhere):
#   .build/ee/dist/residue-purge.tar.gz   the collection, built from the git-tracked tree (ansible-galaxy)
#   .build/ee/collection/                 context of meta/execution-environment.yml (collection-level metadata)
#   .build/ee/awx/                        context of awx/execution-environment.yml (the AWX image with the collection)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=.build/ee
rm -rf "$out"
mkdir -p "$out/src" "$out/dist"
# the tarball holds what git tracks (plus new files not ignored), not a developer's report/ or work dirs
git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$out/src/"
ansible-galaxy collection build --force --output-path "$out/dist" "$out/src" >/dev/null
mv "$out"/dist/residue-purge-*.tar.gz "$out/dist/residue-purge.tar.gz"
# The collection-level file names its requirement files relative to the collection root (ansible-builder's
# convention for meta/execution-environment.yml), so its context is created from a copy placed at that root.
cp meta/execution-environment.yml "$out/src/execution-environment.yml"
ansible-builder create --file "$out/src/execution-environment.yml" --context "$out/collection" --output-filename Containerfile >/dev/null
ansible-builder create --file awx/execution-environment.yml --context "$out/awx" --output-filename Containerfile >/dev/null
echo "ee: contexts in $out/collection and $out/awx (collection tarball $out/dist/residue-purge.tar.gz)"
