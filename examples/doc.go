// Package examples holds complete webhook receivers for outboxd in Go
// (receiver-go), Python (receiver-python) and Node.js (receiver-node). Each reads
// the raw body, verifies the Standard Webhooks signature and its timestamp,
// de-duplicates by webhook-id, answers 2xx at once and does its work afterwards.
// The package's test runs each against a real daemon.
package examples
