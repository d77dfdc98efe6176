//go:build race

package test

// raceBuild: the tests run with -race, and so does the vws binary they build, so
// that the race detector watches the server while real guests run.
const raceBuild = true
