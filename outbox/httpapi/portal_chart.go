package httpapi

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// This file draws an endpoint's chart on the server: deliveries per hour over
// the last 24 hours, stacked by outcome, as inline SVG (presentation
// attributes only, so the strict CSP needs no inline style).

// Chart geometry, in SVG units.
const (
	chartBarWidth = 12
	chartGap      = 2
	chartHeight   = 80
	chartLeft     = 0
)

// chartSegment is one outcome's part of an hour's bar.
type chartSegment struct {
	Y, Height float64
	Class     string
}

// chartBar is one hour.
type chartBar struct {
	X        float64
	Title    string
	Segments []chartSegment
}

// chart is what the template draws.
type chart struct {
	Width, Height float64
	Bars          []chartBar
	Max           int64
	Total         int64
	Label         string // an accessible summary
}

func newChart(hours []outbox.HourlyOutcomes) *chart {
	c := &chart{Height: chartHeight, Width: float64(len(hours) * (chartBarWidth + chartGap))}
	for _, h := range hours {
		c.Max = max(c.Max, h.Delivered+h.Failed+h.Cancelled+h.Pending)
		c.Total += h.Delivered + h.Failed + h.Cancelled + h.Pending
	}
	scale := 0.0
	if c.Max > 0 {
		scale = float64(chartHeight-2) / float64(c.Max)
	}
	for i, h := range hours {
		bar := chartBar{
			X:     float64(chartLeft + i*(chartBarWidth+chartGap)),
			Title: fmt.Sprintf("%s: %d delivered, %d failed, %d pending, %d cancelled", h.Hour.Format("15:04 UTC"), h.Delivered, h.Failed, h.Pending, h.Cancelled),
		}
		y := float64(chartHeight)
		for _, part := range []struct {
			n     int64
			class string
		}{{h.Delivered, "ok"}, {h.Failed, "bad"}, {h.Pending, "wait"}, {h.Cancelled, "off"}} {
			if part.n == 0 {
				continue
			}
			height := math.Max(float64(part.n)*scale, 1)
			y -= height
			bar.Segments = append(bar.Segments, chartSegment{Y: y, Height: height, Class: part.class})
		}
		c.Bars = append(c.Bars, bar)
	}
	c.Label = fmt.Sprintf("Deliveries per hour over the last 24 hours: %d in all, at most %d in an hour", c.Total, c.Max)
	return c
}

// templateFuncs are the pages' helpers.
var templateFuncs = template.FuncMap{
	"time": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if v == nil {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return ""
	},
	"pct": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return fmt.Sprintf("%.1f %%", *f*100)
	},
	"ms": func(f float64) string {
		if f == 0 {
			return "—"
		}
		if f < 10 {
			return fmt.Sprintf("%.1f ms", f)
		}
		return fmt.Sprintf("%.0f ms", f)
	},
	"join": strings.Join,
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"rate":   func(f float64) string { return fmt.Sprintf("%.2f/s", f) },
	"future": func(t *time.Time) bool { return t != nil && t.After(time.Now()) },
	"since":  func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"deref": func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	},
}
