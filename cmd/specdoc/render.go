package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/onsi/ginkgo/v2/types"
)

// Transports lists the transport labels natter's specs are run over, in
// the order of their columns in the rendered tables.
var Transports = []string{"netfake", "loopback"}

// anyColumn is the column of specs that carry no transport label.
const anyColumn = "any"

// mark is the outcome of one behaviour over one transport. Larger values win
// when the same behaviour occurs more than once for the same transport.
type mark int

const (
	markAbsent mark = iota
	markSkipped
	markPassed
	markFailed
)

// symbol returns the Markdown text of m.
func (m mark) symbol() string {
	switch m {
	case markPassed:
		return "✅"
	case markFailed:
		return "❌"
	case markSkipped:
		return "⏭"
	default:
		return "—"
	}
}

// markOf maps a Ginkgo spec state to its mark.
func markOf(s types.SpecState) mark {
	switch {
	case s == types.SpecStatePassed:
		return markPassed
	case s.Is(types.SpecStateSkipped | types.SpecStatePending):
		return markSkipped
	default:
		// Failed, panicked, interrupted, aborted, timed out (and the
		// never-expected invalid state): not a pass.
		return markFailed
	}
}

// loc is a machine-independent code location: file base name and line.
type loc struct {
	file string
	line int
}

func locOf(c types.CodeLocation) loc {
	return loc{file: path.Base(strings.ReplaceAll(c.FileName, `\`, "/")), line: c.LineNumber}
}

func compareLoc(a, b loc) int {
	return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.line, b.line))
}

// behaviour is one row of the document: a spec merged across transports.
type behaviour struct {
	path  []string        // container texts, transport containers removed
	text  string          // It text
	key   []loc           // source-order key: remaining containers, then the It
	marks map[string]mark // column -> mark
}

// compareBehaviours orders behaviours by source location, falling back on
// their texts so that the order is total.
func compareBehaviours(a, b *behaviour) int {
	if c := slices.CompareFunc(a.key, b.key, compareLoc); c != 0 {
		return c
	}
	if c := slices.Compare(a.path, b.path); c != 0 {
		return c
	}
	return strings.Compare(a.text, b.text)
}

// transportOf returns the transport label in labels, or "".
func transportOf(labels []string) string {
	for _, l := range labels {
		for _, t := range Transports {
			if strings.EqualFold(strings.TrimSpace(l), t) {
				return t
			}
		}
	}
	return ""
}

// collect turns the It specs of reports into behaviours, merged across
// transports and sorted in source order.
func collect(reports []types.Report) []*behaviour {
	byID := map[string]*behaviour{}
	var all []*behaviour
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt {
				continue
			}
			column := cmp.Or(transportOf(s.LeafNodeLabels), innermostTransport(s), anyColumn)
			var texts []string
			var key []loc
			for i, text := range s.ContainerHierarchyTexts {
				if i < len(s.ContainerHierarchyLabels) && transportOf(s.ContainerHierarchyLabels[i]) != "" {
					continue // a per-transport container, e.g. a DescribeTableSubtree Entry
				}
				texts = append(texts, text)
				if i < len(s.ContainerHierarchyLocations) {
					key = append(key, locOf(s.ContainerHierarchyLocations[i]))
				}
			}
			key = append(key, locOf(s.LeafNodeLocation))

			id := strings.Join(append(slices.Clone(texts), s.LeafNodeText), "\x00")
			b := byID[id]
			if b == nil {
				b = &behaviour{path: texts, text: s.LeafNodeText, key: key, marks: map[string]mark{}}
				byID[id] = b
				all = append(all, b)
			} else if slices.CompareFunc(key, b.key, compareLoc) < 0 {
				b.key = key
			}
			b.marks[column] = max(b.marks[column], markOf(s.State))
		}
	}
	slices.SortStableFunc(all, compareBehaviours)
	return all
}

// innermostTransport returns the transport label of the innermost container
// of s that carries one, or "".
func innermostTransport(s types.SpecReport) string {
	for i := len(s.ContainerHierarchyLabels) - 1; i >= 0; i-- {
		if t := transportOf(s.ContainerHierarchyLabels[i]); t != "" {
			return t
		}
	}
	return ""
}

// treeNode is a container in the rendered tree.
type treeNode struct {
	text     string
	rows     []*behaviour
	children []*treeNode
	index    map[string]*treeNode
}

// buildTree arranges sorted behaviours into a container tree. Children and
// rows keep the order in which they are first met, which is source order.
func buildTree(bs []*behaviour) *treeNode {
	root := &treeNode{index: map[string]*treeNode{}}
	for _, b := range bs {
		n := root
		for _, text := range b.path {
			c := n.index[text]
			if c == nil {
				c = &treeNode{text: text, index: map[string]*treeNode{}}
				n.index[text] = c
				n.children = append(n.children, c)
			}
			n = c
		}
		n.rows = append(n.rows, b)
	}
	return root
}

// Render writes the Markdown living documentation of reports to w, under
// the heading title. See the package documentation for the format. The
// output depends only on the spec tree, texts, labels, code locations
// (file base names and line numbers, used for ordering) and outcomes.
func Render(w io.Writer, title string, reports []types.Report) error {
	bs := collect(reports)
	columns := slices.Clone(Transports)
	for _, b := range bs {
		if _, ok := b.marks[anyColumn]; ok {
			columns = append(columns, anyColumn)
			break
		}
	}

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s\n\n", inline(title))
	fmt.Fprint(bw, "This file is generated by `make test` from the Ginkgo spec run "+
		"(`ginkgo --json-report`, rendered by `cmd/specdoc`) and must not be edited by hand: "+
		"change the specs in `specs/` and run `make test` again.\n\n")
	fmt.Fprint(bw, "Marks: ✅ passed, ❌ failed, ⏭ skipped or pending, — not run over that transport.")
	if slices.Contains(columns, anyColumn) {
		fmt.Fprint(bw, " The \"any\" column holds specs that are not tied to a transport.")
	}
	fmt.Fprint(bw, "\n\n")
	fmt.Fprintf(bw, "%s\n", summary(bs, columns))

	writeNode(bw, buildTree(bs), 1, columns)
	return bw.Flush()
}

// summary returns the counts line, e.g.
// "Behaviours: 42. netfake: 40 passed of 40. loopback: 41 passed of 41."
func summary(bs []*behaviour, columns []string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Behaviours: %d.", len(bs))
	for _, c := range columns {
		var counts [markFailed + 1]int
		total := 0
		for _, b := range bs {
			if m := b.marks[c]; m != markAbsent {
				counts[m]++
				total++
			}
		}
		fmt.Fprintf(&sb, " %s: %d passed of %d", c, counts[markPassed], total)
		var extra []string
		if n := counts[markFailed]; n > 0 {
			extra = append(extra, fmt.Sprintf("%d failed", n))
		}
		if n := counts[markSkipped]; n > 0 {
			extra = append(extra, fmt.Sprintf("%d skipped", n))
		}
		if len(extra) > 0 {
			fmt.Fprintf(&sb, " (%s)", strings.Join(extra, ", "))
		}
		sb.WriteString(".")
	}
	return sb.String()
}

// writeNode writes n's own behaviours as a table, then its children as
// headings of the given level (capped at 6).
func writeNode(w io.Writer, n *treeNode, level int, columns []string) {
	if len(n.rows) > 0 {
		fmt.Fprintf(w, "\n| behaviour | %s |\n", strings.Join(columns, " | "))
		fmt.Fprintf(w, "| --- |%s\n", strings.Repeat(" :---: |", len(columns)))
		for _, b := range n.rows {
			fmt.Fprintf(w, "| %s |", cell(b.text))
			for _, c := range columns {
				fmt.Fprintf(w, " %s |", b.marks[c].symbol())
			}
			fmt.Fprintln(w)
		}
	}
	for _, c := range n.children {
		text := inline(c.text)
		if text == "" {
			text = "(unnamed)"
		}
		fmt.Fprintf(w, "\n%s %s\n", strings.Repeat("#", min(level+1, 6)), text)
		writeNode(w, c, level+1, columns)
	}
}

// inline collapses the whitespace of s (including newlines) to single
// spaces, so that it fits on one Markdown line.
func inline(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cell makes s safe for a Markdown table cell.
func cell(s string) string {
	s = inline(s)
	if s == "" {
		return "(unnamed)"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}
