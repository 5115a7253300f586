package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// outputFlags are the listing commands' -o (table, json, yaml) and
// --json (-o json).
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "print as `FORMAT`: table, json or yaml"},
		&cli.BoolFlag{Name: "json", Usage: "the same as -o json"},
	}
}

// printAs prints v as -o asks: JSON or YAML (with the API's field names),
// or, for a table, calls table.
func printAs(c *cli.Context, v any, table func() error) error {
	format := c.String("output")
	if c.Bool("json") {
		format = "json"
	}
	w := c.App.Writer
	switch format {
	case "table", "":
		return table()
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		// Through JSON, so that YAML has the API's names.
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := json.Unmarshal(data, &generic); err != nil {
			return err
		}
		out, err := yaml.Marshal(generic)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	return cli.Exit(fmt.Sprintf("-o %s: the formats are table, json and yaml", format), exitUsage)
}
