package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/letta"
	"github.com/outboxd/outboxd/outbox/netguard"
	"github.com/outboxd/outboxd/outbox/signing"
)

// LettaCallbackArgs are inserted by Letta's run-callback trigger (sql/letta).
type LettaCallbackArgs struct {
	LettaSchema string `json:"letta_schema"`
	RunID       string `json:"run_id"`
}

// Kind is the River job kind.
func (LettaCallbackArgs) Kind() string { return letta.CallbackKind }

// lettaCallbackWorker sends a Letta run's callback: Letta's body, signed, through
// the SSRF guard, and writes each attempt's outcome back to the run. A failure is
// retried by River's schedule (8 attempts).
type lettaCallbackWorker struct {
	river.WorkerDefaults[LettaCallbackArgs]
	pool   *pgxpool.Pool
	store  *outbox.Store
	guard  *netguard.Guard
	client *http.Client
	config DeliveryConfig
	logger *slog.Logger
}

func (w *lettaCallbackWorker) Timeout(*river.Job[LettaCallbackArgs]) time.Duration {
	return w.config.jobTimeout()
}

func (w *lettaCallbackWorker) Work(ctx context.Context, job *river.Job[LettaCallbackArgs]) error {
	args := job.Args
	callback, err := letta.LoadCallback(ctx, w.pool, w.store.Schema(), w.store.Keyring(), args.LettaSchema, args.RunID)
	switch {
	case errors.Is(err, letta.ErrCallbackGone):
		return river.JobCancel(err)
	case err != nil:
		return err
	case callback.Sent:
		return nil // an earlier attempt succeeded; the job was run again
	}
	if _, err := w.guard.ValidateURL(ctx, callback.URL); err != nil {
		_ = letta.RecordCallback(ctx, w.pool, args.LettaSchema, args.RunID, 0, err.Error())
		return river.JobCancel(fmt.Errorf("run %s callback_url: %w", args.RunID, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callback.URL, bytes.NewReader(callback.Body))
	if err != nil {
		_ = letta.RecordCallback(ctx, w.pool, args.LettaSchema, args.RunID, 0, err.Error())
		return river.JobCancel(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.config.UserAgent)
	if len(callback.Secrets) > 0 {
		signing.SetHeaders(req.Header, "run_"+args.RunID, time.Now(), callback.Body, callback.Secrets...)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		msg := classifyError(ctx, err) + ": " + describeRequestError(err, w.config.RequestTimeout)
		if recordErr := letta.RecordCallback(ctx, w.pool, args.LettaSchema, args.RunID, 0, msg); recordErr != nil {
			w.logger.WarnContext(ctx, "record letta callback", slog.String("error", recordErr.Error()))
		}
		return fmt.Errorf("run %s callback: %w", args.RunID, err)
	}
	_, _ = readExcerpt(resp.Body, w.config.ResponseReadLimit)
	resp.Body.Close()
	msg := ""
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		msg = fmt.Sprintf("receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if err := letta.RecordCallback(ctx, w.pool, args.LettaSchema, args.RunID, resp.StatusCode, msg); err != nil {
		return err
	}
	if msg != "" {
		return fmt.Errorf("run %s callback: %s", args.RunID, msg)
	}
	return nil
}

// LettaAgentWebhookArgs are inserted by the agent-webhook trigger (sql/letta).
type LettaAgentWebhookArgs struct {
	LettaSchema string `json:"letta_schema"`
	AgentID     string `json:"agent_id"`
}

// Kind is the River job kind.
func (LettaAgentWebhookArgs) Kind() string { return letta.AgentWebhookKind }

// lettaAgentWebhookWorker makes an agent's webhook subscription match the
// webhook_* columns of its Letta row, as they are when it runs (so a burst of
// changes settles on the last): created, updated, disabled, or deleted with the
// agent or its URL. The secret is sealed on outboxd's side like any other.
type lettaAgentWebhookWorker struct {
	river.WorkerDefaults[LettaAgentWebhookArgs]
	pool  *pgxpool.Pool
	store *outbox.Store
}

func (w *lettaAgentWebhookWorker) Work(ctx context.Context, job *river.Job[LettaAgentWebhookArgs]) error {
	args := job.Args
	want, err := letta.LoadAgentWebhook(ctx, w.pool, args.LettaSchema, args.AgentID)
	if err != nil {
		return err
	}
	current, err := w.store.AgentWebhookGet(ctx, args.AgentID)
	if err != nil && !errors.Is(err, outbox.ErrNotFound) {
		return err
	}
	if want == nil {
		if current != nil {
			if err := w.store.SubscriptionDelete(ctx, current.ID); err != nil && !errors.Is(err, outbox.ErrNotFound) {
				return err
			}
		}
		return nil
	}

	params := &outbox.AgentWebhookPutParams{
		AgentID: args.AgentID, OrganizationID: want.OrgID, URL: want.URL, EventTypes: want.Events, Enabled: &want.Enabled,
	}
	if want.Secret != "" {
		secret := signing.Secret(want.Secret)
		if strings.HasPrefix(want.Secret, "whsec_") {
			if secret, err = signing.ParseSecret(want.Secret); err != nil {
				return river.JobCancel(fmt.Errorf("agent %s webhook_secret: %w", args.AgentID, err))
			}
		}
		params.Secret = secret
		if current != nil {
			// Keep an unchanged secret: replacing it would end the old one at once.
			target, err := w.store.DeliveryTarget(ctx, "", current.ID)
			if err != nil {
				return err
			}
			for _, s := range target.Secrets {
				if bytes.Equal(s, secret) {
					params.Secret = nil
				}
			}
		}
	}
	if _, err := w.store.AgentWebhookPut(ctx, params); err != nil {
		var validation *outbox.ValidationError
		if errors.As(err, &validation) {
			return river.JobCancel(fmt.Errorf("agent %s webhook: %w", args.AgentID, err))
		}
		return err
	}
	return nil
}
