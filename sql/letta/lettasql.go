// Package lettasql embeds the SQL of outboxd's Letta integration: the triggers
// that turn Letta's row changes into outbox events, and their removal. The
// outbox/letta package installs it.
package lettasql

import "embed"

// Files holds triggers.sql and uninstall.sql.
//
//go:embed *.sql
var Files embed.FS
