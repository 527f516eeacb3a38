// Package e2e holds end-to-end fault tests of the stagegate binary: each test
// builds a config, runs `stagegate serve` as a subprocess (on the embedded
// bolt store or on a real redis-server), drives it over HTTP like a provider
// and an API client would, kills, stops or restarts the gateway or Redis in
// the middle of the stream, and checks that every accepted event is applied
// exactly once in effect. The package has no code besides its tests.
package e2e
