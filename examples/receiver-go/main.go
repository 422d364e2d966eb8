// Command receiver-go is a complete webhook receiver for outboxd, in Go: it reads
// the raw body, verifies the Standard Webhooks signature and timestamp with the
// official library, skips a webhook-id it has already accepted, answers 2xx at
// once and does the work afterwards.
//
//	WEBHOOK_SECRET=whsec_… PORT=8000 go run ./examples/receiver-go
//
// Then: outboxd subscriptions create --url http://127.0.0.1:8000/webhooks
// --secret whsec_… --allow-private-targets 127.0.0.1/32 (a daemon reaches
// loopback only with the same flag on outboxd run).
//
// It keeps what it has seen, and its work queue, in memory: a real receiver keeps
// them in a durable store, in one transaction (INSERT INTO received (webhook_id,
// body) … ON CONFLICT (webhook_id) DO NOTHING, then answer 2xx; a worker processes
// the rows), so that neither a restart nor a redelivery does the work twice or
// loses it.
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// maxBody caps what a request may send: outboxd's payloads are at most 256 KiB
// by default (outbox.settings.max_payload_bytes), plus the envelope.
const maxBody = 1 << 20

// event is outboxd's envelope around a payload.
type event struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Timestamp      string          `json:"timestamp"`
	OrganizationID *string         `json:"organization_id"`
	AgentID        *string         `json:"agent_id"`
	Data           json.RawMessage `json:"data"`
}

type receiver struct {
	webhook *standardwebhooks.Webhook
	work    chan event

	mu   sync.Mutex
	seen map[string]bool // webhook-ids accepted; a real receiver keeps them durably
}

func (rcv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST webhooks here", http.StatusMethodNotAllowed)
		return
	}
	// The raw bytes: the signature covers them exactly, so never re-encode JSON
	// before verifying.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "body too large or cut off", http.StatusRequestEntityTooLarge)
		return
	}
	// Verify checks the signature (any of several, during a secret rotation) and
	// that webhook-timestamp is within 5 minutes of now, which stops replays.
	if err := rcv.webhook.Verify(body, r.Header); err != nil {
		fmt.Printf("rejected: %v\n", err)
		status := http.StatusUnauthorized
		if errors.Is(err, standardwebhooks.ErrRequiredHeaders) {
			status = http.StatusBadRequest
		}
		http.Error(w, "bad signature", status)
		return
	}
	var e event
	if err := json.Unmarshal(body, &e); err != nil {
		fmt.Printf("rejected: body is not an outboxd event: %v\n", err)
		http.Error(w, "not an event", http.StatusBadRequest)
		return
	}

	// webhook-id is the event's id, the same on every retry: at-least-once
	// delivery means a repeat can come, and it must not do the work again.
	id := r.Header.Get(standardwebhooks.HeaderWebhookID)
	rcv.mu.Lock()
	duplicate := rcv.seen[id]
	rcv.seen[id] = true
	rcv.mu.Unlock()
	if duplicate {
		fmt.Printf("duplicate %s\n", id)
		w.WriteHeader(http.StatusOK) // acknowledged, so outboxd stops sending it
		return
	}

	// Answer now; slow work would hold outboxd's request until it times out and
	// is retried.
	fmt.Printf("accepted %s %s\n", id, e.Type)
	rcv.work <- e
	w.WriteHeader(http.StatusNoContent)
}

// process does the work for each accepted event, after its request was answered.
func (rcv *receiver) process() {
	for e := range rcv.work {
		// Your work here: update a database, call another service, …
		fmt.Printf("processed %s %s\n", e.ID, e.Type)
	}
}

func main() {
	log.SetFlags(0)
	secret := os.Getenv("WEBHOOK_SECRET")
	if secret == "" {
		log.Fatal("set WEBHOOK_SECRET to the subscription's whsec_… secret")
	}
	webhook, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		log.Fatalf("WEBHOOK_SECRET: %v", err)
	}
	listener, err := net.Listen("tcp", net.JoinHostPort(cmp.Or(os.Getenv("HOST"), "127.0.0.1"), cmp.Or(os.Getenv("PORT"), "8000")))
	if err != nil {
		log.Fatal(err)
	}
	rcv := &receiver{webhook: webhook, work: make(chan event, 1000), seen: map[string]bool{}}
	go rcv.process()
	fmt.Printf("listening on http://%s\n", listener.Addr())
	server := &http.Server{Handler: rcv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	log.Fatal(server.Serve(listener))
}
