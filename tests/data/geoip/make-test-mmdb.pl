#!/usr/bin/perl
# SPDX-License-Identifier: BSD-2-Clause
#
# make-test-mmdb.pl: writes the GeoIP test databases with Debian's
# libmaxmind-db-writer-perl, so that no binary database is committed. The records
# have the shape of GeoLite2-Country (continent, country, registered_country, names
# in eight languages), so a lookup walks the data as it would in production.
#
# usage: make-test-mmdb.pl OUTDIR [NAME...]     (default: every NAME below)
#
#   country.mmdb     the main test database:
#                      10.1.0.0/16 DE (but 10.1.200.0/24 AT), 10.2.0.0/16 FR,
#                      10.3.0.0/16 US (registered_country only), 10.4.0.0/16 a record
#                      with no country (""), 10.5.0.0/16 "ch" (read as CH),
#                      127.0.0.0/8 and ::1 ZZ (every test client), 2001:db8:1::/48 JP,
#                      2001:db8:2::/48 KR (registered_country only); anything else ""
#   country-v2.mmdb  the same but 10.1.0.0/16 IT (10.1.200.0/24 still AT),
#                    10.2.0.0/16 gone (""), 10.6.0.0/16 GB: to test a reload
#   truncated.mmdb   country.mmdb cut in half: a corrupt file (no metadata)
#   bench.mmdb       1,024 networks (512 IPv4 /24, 512 IPv6 /48) for bench_geoip;
#   bench.txt        its networks, one "NETWORK CC" a line
#
# Each file is written to a temporary name and renamed, so a gateway that maps
# the old file never sees a half-written one.
use strict;
use warnings;

use File::Basename qw(basename);
use MaxMind::DB::Writer::Tree;

my @LANGUAGES = qw(de en es fr ja pt-BR ru zh-CN);

my %KEY_TYPES = (
    continent             => 'map',
    country               => 'map',
    registered_country    => 'map',
    names                 => 'map',
    code                  => 'utf8_string',
    iso_code              => 'utf8_string',
    geoname_id            => 'uint32',
    is_in_european_union  => 'boolean',
    map { $_ => 'utf8_string' } @LANGUAGES,
);

my %CONTINENT = (
    AT => 'EU', CH => 'EU', DE => 'EU', FR => 'EU', IT => 'EU', GB => 'EU', ES => 'EU',
    NL => 'EU', PL => 'EU', SE => 'EU', JP => 'AS', KR => 'AS', CN => 'AS', IN => 'AS',
    US => 'NA', CA => 'NA', MX => 'NA', BR => 'SA', AR => 'SA', AU => 'OC', ZA => 'AF',
);
my %EU = map { $_ => 1 } qw(AT DE FR IT ES NL PL SE);

sub names
{
    my ($what) = @_;
    return { map { $_ => "$what ($_)" } @LANGUAGES };
}

# A GeoLite2-Country "country" or "registered_country" map.
sub place
{
    my ($cc) = @_;
    my %p = (
        geoname_id => 1000 + unpack('n', uc $cc),
        iso_code   => $cc,
        names      => names("Country $cc"),
    );
    $p{is_in_european_union} = 1 if $EU{ uc $cc };
    return \%p;
}

sub continent
{
    my ($cc) = @_;
    my $code = $CONTINENT{ uc $cc } // 'EU';
    return { code => $code, geoname_id => 6255000 + unpack('n', $code),
             names => names("Continent $code") };
}

# country: the country map and registered_country the same, as most records are.
sub record
{
    my ($cc) = @_;
    return { continent => continent($cc), country => place($cc),
             registered_country => place($cc) };
}

# Only registered_country: what MaxMind writes for some anycast and satellite networks.
sub registered_only
{
    my ($cc) = @_;
    return { continent => continent($cc), registered_country => place($cc) };
}

sub new_tree
{
    my ($type) = @_;
    return MaxMind::DB::Writer::Tree->new(
        ip_version            => 6,
        record_size           => 24,
        database_type         => $type,
        languages             => [@LANGUAGES],
        description           => { en => 'Switchyard test database, not real data' },
        map_key_type_callback => sub { $KEY_TYPES{ $_[0] } },
        # The test networks are documentation, private and loopback ranges.
        remove_reserved_networks => 0,
        # Off, unlike GeoLite2: ::ffff:a.b.c.d must then find the IPv4 entry
        # through the gateway's own mapping, whatever database it is given.
        alias_ipv6_to_ipv4 => 0,
    );
}

# The mapping shared by country.mmdb and country-v2.mmdb; v2 changes what %$changes says.
sub country_tree
{
    my (%changes) = @_;
    my %net = (
        '10.1.0.0/16'     => record('DE'),
        '10.2.0.0/16'     => record('FR'),
        '10.3.0.0/16'     => registered_only('US'),
        # A record without any country (as for some anonymous networks): ""
        '10.4.0.0/16'     => { continent => continent('EU') },
        # Lower case in the file: the gateway reports it upper case.
        '10.5.0.0/16'     => record('ch'),
        # A longer prefix inside 10.1.0.0/16.
        '10.1.200.0/24'   => record('AT'),
        # Every test client connects from loopback.
        '127.0.0.0/8'     => record('ZZ'),
        '::1/128'         => record('ZZ'),
        '2001:db8:1::/48' => record('JP'),
        '2001:db8:2::/48' => registered_only('KR'),
        %changes,
    );
    my $tree = new_tree('GeoLite2-Country');
    # Shorter prefixes first: with merge_strategy "none" the last insert wins.
    for my $n (sort { (split m{/}, $a)[1] <=> (split m{/}, $b)[1] or $a cmp $b } keys %net) {
        $tree->insert_network($n, $net{$n}) if defined $net{$n};
    }
    return $tree;
}

sub write_file
{
    my ($path, $writer) = @_;
    my $tmp = "$path.tmp.$$";
    open my $fh, '>:raw', $tmp or die "$tmp: $!\n";
    $writer->($fh);
    close $fh or die "$tmp: $!\n";
    rename $tmp, $path or die "$path: $!\n";
}

sub write_tree
{
    my ($path, $tree) = @_;
    write_file($path, sub { $tree->write_tree($_[0]) });
}

# 1,024 networks spread over the address space by a fixed generator, so every
# run writes the same file.
sub bench
{
    my ($dir) = @_;
    my @codes = sort keys %CONTINENT;
    my $tree = new_tree('GeoLite2-Country');
    my (%seen, @lines);
    my $x = 2463534242;
    my $next = sub { $x ^= ($x << 13) & 0xffffffff; $x ^= $x >> 17;
                     $x ^= ($x << 5) & 0xffffffff; return $x };
    while (keys %seen < 512) {
        my $v = $next->();
        my $a = 1 + ($v >> 24) % 222;
        next if $a == 10 || $a == 127;
        my $n = sprintf('%d.%d.%d.0/24', $a, ($v >> 16) & 255, ($v >> 8) & 255);
        $seen{$n} //= $codes[ $v % @codes ];
    }
    while (keys %seen < 1024) {
        my $v = $next->();
        my $w = $next->();
        my $n = sprintf('2a%02x:%x:%x::/48', $v & 255, $w & 0xffff, $w >> 16);
        $seen{$n} //= $codes[ $v % @codes ];
    }
    for my $n (sort keys %seen) {
        $tree->insert_network($n, record($seen{$n}));
        push @lines, "$n $seen{$n}\n";
    }
    write_tree("$dir/bench.mmdb", $tree);
    write_file("$dir/bench.txt", sub { print { $_[0] } @lines });
}

my %MAKERS = (
    'country.mmdb'    => sub { write_tree("$_[0]/country.mmdb", country_tree()) },
    'country-v2.mmdb' => sub {
        write_tree("$_[0]/country-v2.mmdb", country_tree(
            '10.1.0.0/16' => record('IT'),
            '10.2.0.0/16' => undef,
            '10.6.0.0/16' => record('GB'),
        ));
    },
    'truncated.mmdb'  => sub {
        my ($dir) = @_;
        my $tree = country_tree();
        my $whole = '';
        open my $mem, '>:raw', \$whole or die "memory file: $!\n";
        $tree->write_tree($mem);
        close $mem;
        write_file("$dir/truncated.mmdb",
                   sub { print { $_[0] } substr($whole, 0, length($whole) / 2) });
    },
    'bench.mmdb'      => \&bench,
);

my $dir = shift @ARGV or die "usage: " . basename($0) . " OUTDIR [NAME...]\n";
my @names = @ARGV ? @ARGV : sort keys %MAKERS;
-d $dir or mkdir $dir or die "$dir: $!\n";
for my $name (@names) {
    my $maker = $MAKERS{$name} or die "unknown database $name (one of: "
        . join(' ', sort keys %MAKERS) . ")\n";
    $maker->($dir);
}
