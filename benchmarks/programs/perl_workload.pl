#!/usr/bin/perl
# perl program of the perl row of benchmarks/compare.py, over the log written by gen_log.py.
# Regex captures into hashes of arrays and hashes of hashes, string building with sprintf and
# join, substitutions, sorts of records: perl gives every scalar, array and hash its own heap
# blocks and grows strings by realloc. Prints sorted digests, so the output is the same under
# every allocator.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my (%by_host, %by_path, %status, %agent_words, @records);
while (my $line = <>) {
  chomp $line;
  my ($date, $time, $host, $method, $url, $code, $bytes, $agent) =
    $line =~ m{^(\S+) (\S+) (\S+) (\S+) (\S+) status=(\d+) bytes=(\d+) agent=(\S+)$} or next;
  my (undef, $area, $page, $id) = split m{/}, $url;
  push @{ $by_host{$host}{$method} }, $id;
  $by_path{"$area/$page"}{count}++;
  $by_path{"$area/$page"}{bytes} += $bytes;
  $status{$code}{ substr($time, 0, 2) }++;
  (my $normal = lc $agent) =~ s/-(\d+)$/_v$1/;
  $agent_words{$_}++ for split /_/, $normal;
  # Every 3rd line becomes a record kept to the end (long-lived), the rest die with the loop.
  push @records, { host => $host, url => $url, bytes => $bytes, stamp => "$date $time" } if $. % 3 == 0;
}

sub sum_of { my $s = 0; $s += $_ for @_; return $s }
for my $host (sort keys %by_host) {
  my $methods = $by_host{$host};
  my $summary = join ',', map { sprintf '%s=%d/%d', $_, scalar @{ $methods->{$_} }, sum_of(@{ $methods->{$_} }) }
    sort keys %$methods;
  print "host $host $summary\n";
}
my @busy = sort { $by_path{$b}{count} <=> $by_path{$a}{count} or $a cmp $b } keys %by_path;
printf "path %s %d %d\n", $_, $by_path{$_}{count}, $by_path{$_}{bytes} for @busy[0 .. 19];
print "paths ", scalar(keys %by_path), " ", md5_hex(join ';', map { "$_:$by_path{$_}{bytes}" } sort keys %by_path), "\n";
for my $code (sort keys %status) {
  print "status $code ", join(' ', map { "$_:$status{$code}{$_}" } sort keys %{ $status{$code} }), "\n";
}
print "agent words ", join(' ', map { "$_=$agent_words{$_}" } sort keys %agent_words), "\n";

my @sorted = sort { $b->{bytes} <=> $a->{bytes} or $a->{stamp} cmp $b->{stamp} or $a->{url} cmp $b->{url} } @records;
my $report = join "\n", map { sprintf '%-8s %-30s %6d %s', @{$_}{qw(host url bytes stamp)} } @sorted;
(my $masked = $report) =~ s/(\d{3,})/'#' x length($1)/ge;
print "records ", scalar(@records), " ", md5_hex($report), " ", md5_hex($masked), "\n";
