// Command specdoc renders a Ginkgo v2 JSON report (the file written by
// `ginkgo --json-report=report.json`, a JSON array of
// github.com/onsi/ginkgo/v2/types.Report) into a deterministic Markdown
// "living documentation" file.
//
// Usage:
//
//	go run ./cmd/specdoc -in report.json [-out specs/SPECS.md] [-title TITLE]
//
// With -out empty (the default) the Markdown is written to standard output.
// -title defaults to "natter behaviour specification".
//
// # What is rendered
//
// Only specs whose leaf node is an It are rendered; suite-level nodes
// (BeforeSuite, ReportAfterSuite, ...) are ignored, as are By steps,
// durations, dates, the random seed and file paths, so the output depends
// only on the spec tree and the spec outcomes.
//
// natter runs every behaviour once per transport. A spec's transport is
// "netfake" or "loopback", whichever of those labels appears on the spec:
// its own It labels are looked at first, then its containers from the
// innermost outwards. Every container whose own labels include a transport
// label (typically the Entry of a DescribeTableSubtree, such as
// "over netfake") is removed from the spec's container path. Specs whose
// remaining path and It text are identical are merged into one behaviour
// row, with one mark per transport:
//
//	✅ passed
//	❌ failed, panicked, interrupted, aborted or timed out (any other state)
//	⏭ skipped or pending
//	— did not run over that transport (not present in the report)
//
// Specs with no transport label at all are transport-agnostic: they get a
// mark in an extra "any" column, which appears (in every table and in the
// summary line) only when the report contains at least one such spec.
// If a behaviour occurs more than once for the same transport, a failure
// wins over a pass, and a pass wins over a skip.
//
// # Layout and order
//
// The document has a "# title" line, a note that the file is generated,
// a legend, a summary line with per-transport counts, and then the
// container tree: top-level containers become "##" headings, nested ones
// "###", "####" and so on (capped at "######"). Each container's own
// behaviours are listed in a table with one column per transport directly
// under its heading, before its nested containers.
//
// Behaviours and containers appear in source order: they are sorted by the
// code locations of their remaining containers and then their It, comparing
// each location by file base name and then line number. The location of a
// removed transport container is not part of that key, so both transports'
// copies of a behaviour sort to the same place. Top-level containers from
// different files are therefore ordered by file base name, then line.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/onsi/ginkgo/v2/types"
)

// defaultTitle is the document title used when -title is not given.
const defaultTitle = "natter behaviour specification"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program behind main: it parses args, reads the report,
// renders it and writes the result. It returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("specdoc", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported below, as "specdoc: <err>"
	in := fs.String("in", "", "Ginkgo JSON report to read (written by ginkgo --json-report)")
	out := fs.String("out", "", "Markdown file to write (default: standard output)")
	title := fs.String("title", defaultTitle, "document title")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: specdoc -in report.json [-out SPECS.md] [-title TITLE]")
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "specdoc: %v\n", err)
		return 1
	}
	if err := generate(*in, *out, *title, fs.Args(), stdout); err != nil {
		fmt.Fprintf(stderr, "specdoc: %v\n", err)
		return 1
	}
	return 0
}

// generate reads the report at in and writes its Markdown rendering to the
// file out, or to stdout when out is empty.
func generate(in, out, title string, extra []string, stdout io.Writer) error {
	if len(extra) > 0 {
		return fmt.Errorf("unexpected arguments: %q", extra)
	}
	if in == "" {
		return errors.New("missing -in report.json")
	}
	reports, err := readReports(in)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := Render(&buf, title, reports); err != nil {
		return err
	}
	if out == "" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	// One closing line for people and CI log readers, counting spec runs
	// (a behaviour run on two transports counts twice).
	_, err = fmt.Fprintln(stdout, tally(reports))
	return err
}

// tally counts the It specs of reports by outcome, as
// "specs: N passed, N failed, N skipped".
func tally(reports []types.Report) string {
	var passed, failed, skipped int
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt {
				continue
			}
			switch markOf(s.State) {
			case markPassed:
				passed++
			case markSkipped:
				skipped++
			default:
				failed++
			}
		}
	}
	return fmt.Sprintf("specs: %d passed, %d failed, %d skipped", passed, failed, skipped)
}

// readReports decodes a Ginkgo JSON report file. The file normally holds an
// array of reports (one per suite); a single report object is accepted too.
func readReports(path string) ([]types.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var r types.Report
		if err := json.Unmarshal(trimmed, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return []types.Report{r}, nil
	}
	var reports []types.Report
	if err := json.Unmarshal(trimmed, &reports); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return reports, nil
}
