#!/usr/bin/env bash
# xmllint (libxml2) under HAKMEM: parse a generated XML catalog into a DOM and write its canonical
# form (--c14n), and evaluate an XPath query over it, with glibc and with the preload; outputs
# must be identical.
source "$(dirname "$0")/preload_lib.sh"
command -v xmllint >/dev/null || fail "xmllint not found (tools/setup.sh installs libxml2-utils)"
DOC=$WORK/catalog.xml
/usr/bin/python3 "$PWD/benchmarks/programs/gen_xml.py" --products=8000 >"$DOC"
run_xmllint() {
  xmllint --c14n "$DOC" "$DOC"
  echo  # canonical XML ends without a newline
  xmllint --xpath 'sum(//product[specs/spec/@key="kilo"]/@stock)' "$DOC"
}
compare_program run_xmllint
echo "ok: $(grep -c '<product ' "$WORK/hakmem.out") products written; xpath: $(tail -n 1 "$WORK/hakmem.out")"
echo PASS
