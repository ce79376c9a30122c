#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# packaging/deb/build-deb.sh: writes $BUILD/switchyard_VERSION_ARCH.deb.
# `make deb` runs it from the top of the tree with MAKE, VERSION, BUILD,
# SY_DEB_CFLAGS and SY_DEB_LDFLAGS (the configured CFLAGS and LDFLAGS) set.
#
# The package's files are what `make install DESTDIR=... PREFIX=/usr` installs,
# so a program or man page that install learns about is packaged with no edit
# here, plus the systemd unit, the logrotate file, the example configuration
# (a conffile) and the docs. The programs are built a second time, in
# $BUILD/deb/tree, with Debian's hardening flags (dpkg-buildflags) added to the
# configured ones: the package gets hardened binaries without changing the
# developer build. Depends comes from the binaries' shared libraries.
set -eu

cd "$(dirname "$0")/../.."
: "${MAKE:=make}" "${BUILD:=build}" "${SY_DEB_CFLAGS:=}" "${SY_DEB_LDFLAGS:=}"
: "${VERSION:?VERSION is not set: run make deb}"

die() {
    echo "build-deb.sh: $*" >&2
    exit 1
}

command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb is missing (Debian: apt-get install dpkg)"
case " $SY_DEB_CFLAGS " in
*" -fsanitize="*) die "this tree is configured with sanitizers: ./configure without them first" ;;
esac

arch=$(dpkg --print-architecture)
top=$BUILD/deb
# dpkg-shlibdeps wants the package's files under debian/PACKAGE/.
pkgroot=$top/debian/switchyard
deb=$BUILD/switchyard_${VERSION}_${arch}.deb
doc=$pkgroot/usr/share/doc/switchyard
umask 022
rm -rf "$top/debian" "$deb"
mkdir -p "$pkgroot"

# Timestamps (changelog date, file times in the archive) from the last
# commit, so that two builds of one commit give the same package.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

# --- files: make install, then what install does not know about -------------

hard_cflags=
hard_ldflags=
if command -v dpkg-buildflags >/dev/null 2>&1; then
    export DEB_BUILD_MAINT_OPTIONS=hardening=+all
    hard_cflags="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
    hard_ldflags=$(dpkg-buildflags --get LDFLAGS)
fi
echo "  DEB    make install DESTDIR=$pkgroot PREFIX=/usr (objects in $top/tree)"
$MAKE --no-print-directory BUILD="$top/tree" \
    CFLAGS="$SY_DEB_CFLAGS $hard_cflags" LDFLAGS="$SY_DEB_LDFLAGS $hard_ldflags" \
    DESTDIR="$pkgroot" PREFIX=/usr install >"$top/install.log" ||
    { cat "$top/install.log" >&2; die "make install failed"; }

# install puts conf/switchyard.json in PREFIX/etc; the package has its own
# configuration in /etc.
rm -rf "$pkgroot/usr/etc"

elf_files=
for f in "$pkgroot"/usr/bin/*; do
    if [ "$(od -An -tx1 -N4 "$f" | tr -d ' \n')" = 7f454c46 ]; then
        strip --strip-unneeded --remove-section=.comment --remove-section=.note "$f"
        elf_files="$elf_files ${f#"$top"/}"
    fi
done
[ -n "$elf_files" ] || die "make install put no program in $pkgroot/usr/bin"

if [ -d "$pkgroot/usr/share/man" ]; then
    find "$pkgroot/usr/share/man" -type f ! -name '*.gz' -exec gzip -9n {} +
fi

unit_dir=$pkgroot/lib/systemd/system
install -D -m 644 contrib/systemd/switchyard.service "$unit_dir/switchyard.service"
install -D -m 644 contrib/logrotate/switchyard "$pkgroot/etc/logrotate.d/switchyard"
install -D -m 644 packaging/deb/switchyard.json "$pkgroot/etc/switchyard/switchyard.json"
# The shipped example must load (a listener, the admin's /health).
"$pkgroot/usr/bin/switchyard" -t -c "$pkgroot/etc/switchyard/switchyard.json" >/dev/null 2>&1 ||
    die "packaging/deb/switchyard.json does not pass switchyard -t"

install -d "$doc"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: switchyard"
    echo
    echo "Files: *"
    echo "Copyright: $(sed -n 's/^Copyright (c) //p' LICENSE)"
    echo "License: BSD-2-Clause"
    echo
    echo "License: BSD-2-Clause"
    sed -n '/^Redistribution/,$p' LICENSE | sed -e 's/^$/./' -e 's/^/ /'
} >"$doc/copyright"
gzip -9nc CHANGELOG.md >"$doc/changelog.gz"
gzip -9nc docs/operations.md >"$doc/operations.md.gz"
maintainer="${DEBFULLNAME:-Switchyard maintainers} <${DEBEMAIL:-maintainers@switchyard.invalid}>"
{
    echo "switchyard ($VERSION) unstable; urgency=medium"
    echo
    echo "  * Built from the Switchyard source tree by make deb; the changes are"
    echo "    in changelog.gz."
    echo
    echo " -- $maintainer  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.Debian.gz"

find "$pkgroot" -type d -exec chmod 755 {} +

# --- control files -----------------------------------------------------------

# dpkg-shlibdeps finds the package's root by its DEBIAN directory.
install -d -m 755 "$pkgroot/DEBIAN"
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    printf 'Source: switchyard\n\nPackage: switchyard\nArchitecture: any\n' >"$top/debian/control"
    # shellcheck disable=SC2086  # one word per program
    depends=$(cd "$top" && dpkg-shlibdeps -O $elf_files | sed -n 's/^shlibs:Depends=//p')
else
    # Without dpkg-dev: the packages that own the libraries the programs load.
    depends=$(for f in $elf_files; do ldd "$top/$f"; done |
        awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
        while read -r lib; do
            dpkg-query -S "$lib" 2>/dev/null || dpkg-query -S "$(readlink -f "$lib")" 2>/dev/null ||
                dpkg-query -S "/usr$lib" 2>/dev/null || echo "UNOWNED: $lib"
        done | sed 's/:.*//' | sort -u | paste -sd, - | sed 's/,/, /g')
    case $depends in *UNOWNED*) die "no package owns a library the programs load" ;; esac
fi
[ -n "$depends" ] || die "could not work out Depends"

installed_size=$(du -sk --exclude=DEBIAN "$pkgroot" | cut -f1)
grep -v '^#' packaging/deb/control.in | sed \
    -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@DEPENDS@|$depends|" \
    >"$pkgroot/DEBIAN/control"
chmod 644 "$pkgroot/DEBIAN/control"
(cd "$pkgroot" && find etc -type f | LC_ALL=C sort | sed 's|^|/|') >"$pkgroot/DEBIAN/conffiles"
# md5sums of everything but the conffiles (dpkg keeps those apart), as dh_md5sums.
(cd "$pkgroot" && find usr lib -type f | LC_ALL=C sort | xargs md5sum) >"$pkgroot/DEBIAN/md5sums"
for s in postinst prerm postrm; do
    install -m 755 "packaging/deb/$s" "$pkgroot/DEBIAN/$s"
done

# --root-owner-group: root:root in the archive without fakeroot or root.
dpkg-deb --root-owner-group -Zxz --build "$pkgroot" "$deb" >/dev/null
echo "  DEB    $deb"
