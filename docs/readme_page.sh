#!/usr/bin/env bash
# Regenerate docs/softmax_n5_page.png, the page of the softmax n = 5 derivation shown in the
# README: the PDF is built with `symjac derive --pdf` in a temporary directory and the page
# that starts "The derivative through the stages" is rendered at 80 dpi. Needs pdflatex and poppler
# (pdftotext, pdftoppm). Run from anywhere:  bash docs/readme_page.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -m symjac derive softmax -n 5 --target latex --pdf -o "$work" >/dev/null
pdf="$work/softmax_n5.pdf"
pages=$(pdfinfo "$pdf" 2>/dev/null | awk '/^Pages:/ {print $2}' || true)
page=""
for ((p = 1; p <= ${pages:-20}; p++)); do
    if pdftotext -f "$p" -l "$p" "$pdf" - 2>/dev/null | grep -q "The derivative through the stages"; then
        page=$p
        break
    fi
done
if [[ -z "$page" ]]; then
    echo "readme_page.sh: no page with the step-by-step derivation in $pdf" >&2
    exit 1
fi
pdftoppm -png -r 80 -f "$page" -l "$page" -singlefile "$pdf" docs/softmax_n5_page
echo "wrote docs/softmax_n5_page.png (page $page of ${pages:-?}; the README says which)"
