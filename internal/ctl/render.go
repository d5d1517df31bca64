package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// JSONRow is a Row as WriteJSON prints it. Code is null when the call
// failed before the node answered; Error then says why.
type JSONRow struct {
	Node   string `json:"node"`
	OK     bool   `json:"ok"`
	Code   *int   `json:"code"`
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
}

// JSONRows converts rows for JSON output.
func JSONRows(rows []Row) []JSONRow {
	out := make([]JSONRow, len(rows))
	for i, r := range rows {
		j := JSONRow{Node: r.Node, OK: r.OK(), Output: r.Output}
		if r.Err != nil {
			j.Error = Explain(r.Err)
		} else {
			code := r.Code
			j.Code = &code
		}
		out[i] = j
	}
	return out
}

// WriteJSON prints v as indented JSON and a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// WriteTable prints rows as a table with the columns NODE, CODE and
// OUTPUT, in the order given. A failed call shows "-" as its code and
// "error: " and the explained reason as its output; the lines of a
// multi-line output after the first are indented to the OUTPUT column.
func WriteTable(w io.Writer, rows []Row) error {
	nodeW, codeW := len("NODE"), len("CODE")
	for _, r := range rows {
		nodeW = max(nodeW, len(r.Node))
		codeW = max(codeW, len(codeText(r)))
	}
	indent := strings.Repeat(" ", nodeW+2+codeW+2)
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s  %-*s  %s\n", nodeW, "NODE", codeW, "CODE", "OUTPUT")
	for _, r := range rows {
		text := r.Output
		if r.Err != nil {
			text = "error: " + Explain(r.Err)
		}
		lines := strings.Split(strings.TrimRight(clean(text), "\n"), "\n")
		line := fmt.Sprintf("%-*s  %-*s  %s", nodeW, r.Node, codeW, codeText(r), lines[0])
		b.WriteString(strings.TrimRight(line, " ") + "\n")
		for _, l := range lines[1:] {
			b.WriteString(strings.TrimRight(indent+l, " ") + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func codeText(r Row) string {
	if r.Err != nil {
		return "-"
	}
	return strconv.Itoa(r.Code)
}

// clean drops carriage returns and makes other control characters visible,
// so that a server's text cannot move a terminal's cursor.
func clean(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case unicode.IsControl(r):
			return '\uFFFD'
		}
		return r
	}, s)
}

// WriteLogs prints GETLOG's rows as each node's lines under a "== NODE =="
// header, unindented and as the node answered them (control characters made
// visible), nodes apart by a blank line. A node whose call failed shows
// "error: " and the explained reason under its header, one whose verb
// failed its output after "(code N)" in the header.
func WriteLogs(w io.Writer, rows []Row) error {
	var b strings.Builder
	for i, r := range rows {
		if i > 0 {
			b.WriteString("\n")
		}
		head := "== " + r.Node + " =="
		text := r.Output
		switch {
		case r.Err != nil:
			text = "error: " + Explain(r.Err)
		case r.Code != 0:
			head += " (code " + strconv.Itoa(r.Code) + ")"
		}
		b.WriteString(head + "\n")
		if t := strings.TrimRight(clean(text), "\n"); t != "" {
			b.WriteString(t + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
