package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/outbox/signing"
)

func newListenCommand(a *app) *cobra.Command {
	var (
		host    string
		port    int
		secrets []string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "listen --port PORT --secret whsec_…",
		Short: "Run a local webhook receiver that verifies signatures and prints each event",
		Long: `Run a local webhook receiver. Each request's Standard Webhooks signature is
verified with the given secret(s); verified events are printed to stdout, one
line each (--json for JSON lines) and answered 204; others are answered 401 and
reported on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var parsed []signing.Secret
			for _, s := range secrets {
				secret, err := signing.ParseSecret(s)
				if err != nil {
					return fmt.Errorf("--secret: %w", err)
				}
				parsed = append(parsed, secret)
			}
			if len(parsed) == 0 {
				return errors.New("--secret is required: the subscription's whsec_… secret")
			}
			listener, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			fmt.Fprintf(a.stderr, "Listening on http://%s/ and verifying signatures with %d secret(s). Ctrl-C stops.\n", listener.Addr(), len(parsed))
			server := &http.Server{
				Handler:           &receiver{secrets: parsed, stdout: a.stdout, stderr: a.stderr, asJSON: asJSON},
				ReadHeaderTimeout: 10 * time.Second,
			}
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 5*time.Second)
				defer cancel()
				_ = server.Shutdown(ctx)
			}()
			if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&host, "host", "127.0.0.1", "address to listen on")
	flags.IntVar(&port, "port", 9000, "port to listen on")
	flags.StringArrayVar(&secrets, "secret", nil, "subscription secret whsec_… (repeat during a rotation)")
	flags.BoolVar(&asJSON, "json", false, "print JSON lines")
	a.bindEnv(flags, "secret", "OUTBOXD_LISTEN_SECRET")
	return cmd
}

// receiver verifies and prints webhooks.
type receiver struct {
	secrets []signing.Secret
	asJSON  bool

	mu     sync.Mutex
	stdout io.Writer
	stderr io.Writer
}

// receivedLine is one --json output line.
type receivedLine struct {
	ReceivedAt       time.Time       `json:"received_at"`
	WebhookID        string          `json:"webhook_id"`
	WebhookTimestamp string          `json:"webhook_timestamp"`
	Verified         bool            `json:"verified"`
	Event            json.RawMessage `json:"event"`
}

func (rcv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	now := time.Now()
	id := r.Header.Get(signing.HeaderID)
	if err := signing.Verify(r.Header, body, rcv.secrets, nil); err != nil {
		rcv.mu.Lock()
		fmt.Fprintf(rcv.stderr, "%s  rejected %s %s from %s: %v\n", now.Format("15:04:05.000"), r.Method, r.URL.Path, r.RemoteAddr, err)
		rcv.mu.Unlock()
		http.Error(w, "signature verification failed: "+err.Error(), http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.asJSON {
		_ = json.NewEncoder(rcv.stdout).Encode(receivedLine{
			ReceivedAt:       now.UTC(),
			WebhookID:        id,
			WebhookTimestamp: r.Header.Get(signing.HeaderTimestamp),
			Verified:         true,
			Event:            body,
		})
		return
	}
	var event struct {
		Type           string          `json:"type"`
		AgentID        *string         `json:"agent_id"`
		OrganizationID *string         `json:"organization_id"`
		Data           json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(body, &event)
	scope := ""
	if event.AgentID != nil {
		scope += " agent=" + *event.AgentID
	}
	if event.OrganizationID != nil {
		scope += " org=" + *event.OrganizationID
	}
	fmt.Fprintf(rcv.stdout, "%s  verified  %s  %s%s  %s\n", now.Format("15:04:05.000"), id, event.Type, scope, event.Data)
}
