//go:build integration

// Package integration runs runtimed end to end against a real containerd
// and runsc (see tests/harness): the API, the CLI, the languages, limits
// and verdicts, cleanup and recovery.
package integration

import (
	"os"
	"testing"

	"github.com/runtimed/runtimed/tests/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// Short names for the harness's helpers.
var (
	env             = &harness.Env
	runOK           = harness.RunOK
	files           = harness.Files
	expectStatus    = harness.ExpectStatus
	trim            = harness.Trim
	leftovers       = harness.Leftovers
	waitNoLeftovers = harness.WaitNoLeftovers
	unixHTTP        = harness.UnixHTTP
	postRaw         = harness.PostRaw
	decodeErrorBody = harness.DecodeErrorBody
)
