package httpapi_test

import (
	"os"
	"testing"

	"github.com/outboxd/outboxd/outbox/browsertest"
)

// TestMain stops the browser of the browser tests when they are done.
func TestMain(m *testing.M) {
	os.Exit(browsertest.Run(m))
}
