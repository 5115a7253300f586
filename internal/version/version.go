// Package version holds the version of runtimed's binaries, the one its
// package carries too: set at build time from packaging/scripts/version.sh
// (make build passes it with -ldflags -X). It imports nothing, so that
// runtimectl does not link the daemon to print it.
package version

// Version is X.Y.Z at a release tag vX.Y.Z; between releases, the last
// release's version with +git, the commit's date and id; "dev" in a
// build that did not set it.
var Version = "dev"
