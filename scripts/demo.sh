#!/usr/bin/env bash
# The main job in one command: build demo layers, mount them, change something, show the result.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product unionfs-swift 2>&1 | tail -1
bin="$(swift build -c release --show-bin-path)/unionfs-swift"
demo=$(mktemp -d /tmp/unionfs-demo.XXXXXX)
trap 'fusermount3 -u "$demo/merged" 2>/dev/null || true' EXIT
mkdir -p "$demo"/{base,app,upper,work,merged}
mkdir -p "$demo"/base/etc "$demo"/base/usr/share/doc
echo "debian" > "$demo/base/etc/os-release"
echo "old motd" > "$demo/base/etc/motd"
echo "readme" > "$demo/base/usr/share/doc/README"
mkdir -p "$demo"/app/etc "$demo"/app/srv
echo "app motd" > "$demo/app/etc/motd"
echo "hello" > "$demo/app/srv/index.html"
touch "$demo/app/usr.wh.marker" && rm "$demo/app/usr.wh.marker"
mkdir -p "$demo/app/usr/share" && touch "$demo/app/usr/share/.wh.doc"   # OCI whiteout: hides base's doc
"$bin" -o "lowerdir=$demo/app:$demo/base,upperdir=$demo/upper,workdir=$demo/work" "$demo/merged"
echo "== merged view of app over base =="
(cd "$demo/merged" && find . | sort)
echo "== cat etc/motd =="
cat "$demo/merged/etc/motd"
if touch "$demo/merged/etc/new-file" 2>/dev/null; then
  echo "changed" > "$demo/merged/srv/index.html"
  rm "$demo/merged/etc/os-release"
  echo "== upper after changes =="
  (cd "$demo/upper" && find . -printf '%y %p\n' | sort)
  if "$bin" diff --help >/dev/null 2>&1; then
    echo "== unionfs-swift diff =="
    "$bin" diff -o "lowerdir=$demo/app:$demo/base,upperdir=$demo/upper"
  fi
fi
