package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
		msg := classifyError(ctx, err) + ": " + err.Error()
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
