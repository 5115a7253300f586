package main

import (
	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v2"
)

var configCommand = &cli.Command{
	Name:  "config",
	Usage: "check the configuration and print it as runtimed would use it (file, then flags)",
	Action: func(c *cli.Context) error {
		cfg, err := loadConfig(c)
		if err != nil {
			return err
		}
		enc := toml.NewEncoder(c.App.Writer)
		enc.SetIndentTables(true)
		return enc.Encode(cfg)
	},
}
