#!/usr/bin/env bash
# run.sh runs the crash proof and writes its figures into docs/RELIABILITY.md
# (between the markers). It runs in CI too, as part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp)
BACKUPSYNC_RELIABILITY_OUT=$out go test -count=1 -timeout 15m ./test/crash
python3 - "$out" <<'PY'
import re, sys
doc = open('docs/RELIABILITY.md').read()
table = open(sys.argv[1]).read()
doc = re.sub(r'(<!-- figures -->\n).*(<!-- /figures -->)', lambda m: m.group(1) + table + m.group(2), doc, flags=re.S)
open('docs/RELIABILITY.md', 'w').write(doc)
PY
rm -f "$out"
echo "docs/RELIABILITY.md updated"
