package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/outbox"
)

func newPublishCommand(a *app) *cobra.Command {
	var (
		params outbox.PublishParams
		data   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "publish --type TYPE [--agent ID] [--org ID] [--data JSON]",
		Short: "Publish an event, as a producer's INSERT would",
		Example: `  outboxd publish --type agent.step.completed --agent agent-1 --data '{"step_id":"step-1"}'
  echo '{"run_id":"run-1"}' | outboxd publish --type agent.run.completed --data -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if data == "-" {
				raw, err := io.ReadAll(a.stdin)
				if err != nil {
					return fmt.Errorf("read --data from stdin: %w", err)
				}
				data = string(raw)
			}
			params.Payload = json.RawMessage(data)
			store, pool, err := a.openStore(ctx, nil)
			if err != nil {
				return err
			}
			defer pool.Close()

			var event *outbox.Event
			err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if event, err = store.PublishTx(ctx, tx, &params); err != nil {
					return err
				}
				// One command, one event: waking the relays costs nothing here.
				return store.WakeTx(ctx, tx)
			})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(event)
			}
			fmt.Fprintln(a.stdout, event.ID)
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&params.Type, "type", "", "event type, e.g. agent.step.completed (required)")
	flags.StringVar(&params.AgentID, "agent", "", "agent id the event is about")
	flags.StringVar(&params.OrganizationID, "org", "", "organization id the event belongs to")
	flags.StringVar(&params.IdempotencyKey, "idempotency-key", "", "publish at most once per organization for this key")
	flags.StringVar(&data, "data", "{}", "payload, a JSON object; - reads it from stdin")
	flags.BoolVar(&asJSON, "json", false, "print the event as JSON")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}
