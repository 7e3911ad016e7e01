#!/usr/bin/env bash
# The runtime image's size without a Docker engine: builds the filesystem docker/Dockerfile's final stage
# makes (Debian bookworm, minimal, with ca-certificates and libssl3; slimmed as debian:*-slim is: no docs but
# copyright files, man pages, info or locales), adds the given binary, checks it runs there, and prints the
# size on disk and gzip-compressed (about what a registry stores). Needs root and debootstrap.
#   bash docker/rootfs-size.sh target/release/connector
set -euo pipefail
binary=${1:?usage: rootfs-size.sh path/to/connector}
root=$(mktemp -d /tmp/connector-rootfs.XXXXXX)
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates libssl3 >/dev/null'
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* "$root"/tmp/* "$root/etc/resolv.conf"
find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{info,man,groff,lintian,linda}/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
size() { echo "$(($(du -sb "$root" | cut -f1) / 1000000)) MB on disk, $(($(tar -C "$root" -cf - . | gzip -6 | wc -c) / 1000000)) MB gzipped"; }
echo "base: $(size)"
install -D -m 0755 "$binary" "$root/usr/local/bin/connector"
echo "with connector: $(size)"
# The binary's libraries are all there: a CSV becomes a Delta table inside it (deltalake reads /proc's meminfo).
mkdir -p "$root/data" && printf 'id,name\n1,a\n' >"$root/data/people.csv"
mount -t proc proc "$root/proc"
chroot "$root" /usr/local/bin/connector load /data/people.csv --dest /data/lake --table raw.people >/dev/null
echo "connector load ran inside it"
