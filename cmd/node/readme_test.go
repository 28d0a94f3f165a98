package main

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEListsEveryOption keeps the README's configuration table true:
// every option appears with its default.
func TestREADMEListsEveryOption(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultNodeConfig()
	for _, o := range options() {
		row := "| `" + o.name + "` | `" + o.def(&cfg) + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md lacks the row starting %q", row)
		}
	}
}
