#!/usr/bin/perl
# A deterministic hash/string/regex heavy Perl workload; prints digests of what it built.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed % $_[0]; }

my @letters = ('a' .. 'z');
my @words = map { join '', map { $letters[rnd(26)] } 1 .. (1 + rnd(10)) } 1 .. 200_000;

# Hashes: counting, nesting, deleting.
my %count;
$count{$_}++ for @words;
my %index;
for my $i (0 .. $#words) {
  push @{ $index{ substr($words[$i], 0, 2) } }, $i;
  delete $count{ $words[ rnd(scalar @words) ] } if $i % 11 == 0;
}
my %deep;
for my $i (1 .. 200_000) {
  $deep{ $i % 97 }{ $i % 89 }{ $i % 7 } .= chr(65 + $i % 26);
}
print "hash: ", scalar(keys %count), " ", md5_hex(join ',', map { "$_=$count{$_}" } sort keys %count), "\n";
print "index: ", scalar(keys %index), " ", md5_hex(join ';', map { "$_:" . scalar(@{ $index{$_} }) } sort keys %index), "\n";
my $deep_text = '';
for my $x (sort { $a <=> $b } keys %deep) {
  for my $y (sort { $a <=> $b } keys %{ $deep{$x} }) {
    $deep_text .= join '', map { $deep{$x}{$y}{$_} } sort keys %{ $deep{$x}{$y} };
  }
}
print "deep: ", length($deep_text), " ", md5_hex($deep_text), "\n";

# Strings: building, splitting, joining, sprintf, reverse, repetition.
my $text = join ' ', @words;
my @sentences;
for my $i (0 .. 100_000) {
  push @sentences, sprintf("%05d %s %s.", $i, ucfirst($words[$i]), scalar reverse($words[-$i - 1]) x (1 + $i % 3));
}
my $doc = join "\n", @sentences;
my @fields = split /\s+/, $doc;
print "strings: ", length($text), " ", scalar(@fields), " ", md5_hex($doc), "\n";

# Regexes: matching, captures, substitution with code, tr.
my %pairs;
while ($text =~ /\b([a-z])([a-z]*)\1\b/g) { $pairs{$1}++ }
(my $swapped = $text) =~ s/\b(\w)(\w*)(\w)\b/$3$2$1/g;
(my $numbered = $doc) =~ s/(\d+)/$1 * 2/ge;
my $vowels = ($text =~ tr/aeiou//);
my @long = grep { /^[^aeiou]*[aeiou][^aeiou]*[aeiou]/ && length > 6 } @words;
print "regex: ", join(',', map { "$_$pairs{$_}" } sort keys %pairs), "\n";
print "subst: ", md5_hex($swapped), " ", md5_hex($numbered), " $vowels ", scalar(@long), "\n";

# Sorting and lists of records.
my @records = map { { name => $words[$_], n => rnd(1000), tags => [ @words[ $_ .. $_ + 3 ] ] } } 0 .. 100_000;
my @sorted = sort { $a->{n} <=> $b->{n} or $a->{name} cmp $b->{name} } @records;
print "sort: ", md5_hex(join ' ', map { "$_->{name}/$_->{n}/@{$_->{tags}}" } @sorted[0 .. 500]), "\n";
