package statuspage

import (
	"fmt"
	"strings"
	"time"

	"backupsync/internal/display"
	"backupsync/internal/history"
)

// series is one node's points of one connection in a chart.
type series struct {
	Node   string
	Color  string
	Points []history.Point
}

// chart is an SVG chart as the template draws it: every coordinate is
// computed here, every text is escaped there.
type chart struct {
	Title string
	W, H  int
	Box   rect // the plot area
	// Right and Bottom edges and the middle of the plot area.
	Right, Bottom, MidX, MidY string
	XTicks                    []tick
	YTicks                    []tick
	Lines                     []polyline
	Dots                      []dot
	Bars                      []rect
	Legend                    []legendItem
	Caption                   string
	// Empty says why nothing is drawn ("no cycle in the last day").
	Empty string
}

type tick struct {
	X, Y  string
	Label string
}

type polyline struct {
	Points string
	Color  string
	Title  string
}

type dot struct {
	X, Y  string
	Title string
}

type rect struct {
	X, Y, W, H string
	Color      string
	Title      string
}

type legendItem struct{ Node, Color string }

// Chart geometry, in SVG user units (the SVG scales to its column).
const (
	chartW, chartH              = 640, 190
	padL, padR, padTop, padBott = 64, 12, 10, 24
)

// window is a chart's time span.
type window struct {
	Name     string        // "last day"
	Span     time.Duration // 24h
	Tick     time.Duration // x tick spacing
	TickFmt  string        // time.Format layout of x ticks
	Buckets  int           // throughput bars
	BucketIs string        // "30 min"
}

var (
	day  = window{Name: "last day", Span: 24 * time.Hour, Tick: 3 * time.Hour, TickFmt: "15:04", Buckets: 48, BucketIs: "30 min"}
	week = window{Name: "last week", Span: 7 * 24 * time.Hour, Tick: 24 * time.Hour, TickFmt: "Mon 02", Buckets: 56, BucketIs: "3 h"}
)

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }

// frame is the empty chart of window w ending at now: axes and x ticks.
func frame(title string, w window, now time.Time, s []series) (chart, time.Time, func(time.Time) float64) {
	c := chart{Title: title, W: chartW, H: chartH}
	x0, x1 := float64(padL), float64(chartW-padR)
	y0, y1 := float64(padTop), float64(chartH-padBott)
	c.Box = rect{X: f1(x0), Y: f1(y0), W: f1(x1 - x0), H: f1(y1 - y0)}
	c.Right, c.Bottom, c.MidX, c.MidY = f1(x1), f1(y1), f1((x0+x1)/2), f1((y0+y1)/2)
	from := now.Add(-w.Span)
	xOf := func(t time.Time) float64 {
		return x0 + (x1-x0)*float64(t.Sub(from))/float64(w.Span)
	}
	for t := from.UTC().Truncate(w.Tick).Add(w.Tick); t.Before(now); t = t.Add(w.Tick) {
		c.XTicks = append(c.XTicks, tick{X: f1(xOf(t)), Y: f1(y1), Label: t.UTC().Format(w.TickFmt)})
	}
	for _, x := range s {
		c.Legend = append(c.Legend, legendItem{x.Node, x.Color})
	}
	return c, from, xOf
}

// lagChart draws each node's lag after each cycle in window w; a failed
// cycle is a red dot on its line.
func lagChart(title string, w window, now time.Time, s []series) chart {
	c, from, xOf := frame(title, w, now, s)
	y0, y1 := float64(padTop), float64(chartH-padBott)
	var worst float64
	var worstAt time.Time
	var worstNode string
	any := false
	for _, x := range s {
		for _, p := range x.Points {
			if p.Finished.Before(from) || p.Finished.After(now) {
				continue
			}
			any = true
			if p.LagSeconds > worst {
				worst, worstAt, worstNode = p.LagSeconds, p.Finished, x.Node
			}
		}
	}
	if !any {
		c.Empty = "no cycle in the " + w.Name
		return c
	}
	top := niceDuration(time.Duration(worst * float64(time.Second)))
	yOf := func(sec float64) float64 { return y1 - (y1-y0)*sec/top.Seconds() }
	for i := 0; i <= 4; i++ {
		v := top.Seconds() * float64(i) / 4
		c.YTicks = append(c.YTicks, tick{X: f1(float64(padL)), Y: f1(yOf(v)), Label: display.Duration(time.Duration(v * float64(time.Second)))})
	}
	for _, x := range s {
		var pts []string
		flush := func() {
			if len(pts) > 0 {
				if len(pts) == 1 { // one point still shows as a short stroke
					pts = append(pts, pts[0])
				}
				c.Lines = append(c.Lines, polyline{Points: strings.Join(pts, " "), Color: x.Color, Title: x.Node + ": lag after each cycle"})
				pts = nil
			}
		}
		for _, p := range x.Points {
			if p.Finished.Before(from) || p.Finished.After(now) {
				continue
			}
			if p.LagSeconds < 0 {
				flush()
				continue
			}
			xy := f1(xOf(p.Finished)) + "," + f1(yOf(p.LagSeconds))
			pts = append(pts, xy)
			if f := p.Failures(); f > 0 {
				c.Dots = append(c.Dots, dot{X: f1(xOf(p.Finished)), Y: f1(yOf(p.LagSeconds)),
					Title: fmt.Sprintf("%s %s: %d of %d cycle(s) failed, lag %s", x.Node, display.Time(p.Finished), f, p.Count(), display.Duration(secs(p.LagSeconds)))})
			}
		}
		flush()
	}
	if worst >= 1 {
		c.Caption = fmt.Sprintf("largest lag %s (%s, %s)", display.Duration(secs(worst)), worstNode, display.Time(worstAt))
	} else {
		c.Caption = "lag 0s after every cycle"
	}
	if len(c.Dots) > 0 {
		c.Caption += "; red dots: failed cycles"
	}
	return c
}

// throughputChart draws the bytes each node copied per bucket of window
// w, stacked.
func throughputChart(title string, w window, now time.Time, s []series) chart {
	c, from, xOf := frame(title, w, now, s)
	y0, y1 := float64(padTop), float64(chartH-padBott)
	size := w.Span / time.Duration(w.Buckets)
	sums := make([][]int64, len(s))
	var total int64
	var copySecs float64
	any := false
	for i, x := range s {
		sums[i] = make([]int64, w.Buckets)
		for _, p := range x.Points {
			if !p.Finished.After(from) || p.Finished.After(now) {
				continue
			}
			any = true
			b := min(int(p.Finished.Sub(from)/size), w.Buckets-1)
			sums[i][b] += p.Bytes
			total += p.Bytes
			if p.Bytes > 0 {
				copySecs += p.Seconds
			}
		}
	}
	if !any {
		c.Empty = "no cycle in the " + w.Name
		return c
	}
	var most int64
	for b := range w.Buckets {
		var stack int64
		for i := range s {
			stack += sums[i][b]
		}
		most = max(most, stack)
	}
	top := niceBytes(most)
	yOf := func(v int64) float64 { return y1 - (y1-y0)*float64(v)/float64(top) }
	for i := 0; i <= 4; i++ {
		v := top * int64(i) / 4
		c.YTicks = append(c.YTicks, tick{X: f1(float64(padL)), Y: f1(yOf(v)), Label: display.Bytes(v)})
	}
	for b := range w.Buckets {
		start := from.Add(time.Duration(b) * size)
		xa, xb := xOf(start), xOf(start.Add(size))
		var below int64
		for i, x := range s {
			v := sums[i][b]
			if v == 0 {
				continue
			}
			c.Bars = append(c.Bars, rect{
				X: f1(xa + 0.5), W: f1(max(xb-xa-1, 0.5)), Y: f1(yOf(below + v)), H: f1(yOf(below) - yOf(below+v)),
				Color: x.Color,
				Title: fmt.Sprintf("%s, %s to %s: %s copied", x.Node, display.Time(start), display.Time(start.Add(size)), display.Bytes(v)),
			})
			below += v
		}
	}
	c.Caption = fmt.Sprintf("%s copied in the %s, per %s", display.Bytes(total), w.Name, w.BucketIs)
	if copySecs > 0 {
		c.Caption += fmt.Sprintf("; %s while copying", display.Rate(float64(total)/copySecs))
	}
	return c
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// niceDuration is the smallest round duration at least d (at least a minute).
func niceDuration(d time.Duration) time.Duration {
	for _, n := range []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute,
		40 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour} {
		if d <= n {
			return n
		}
	}
	day := 24 * time.Hour
	return (d + 4*day - 1) / (4 * day) * (4 * day)
}

// niceBytes is the smallest of 4 to 1024 times a power of 1024 (at
// least 4 KiB) that is at least n, so that quarters read well; n itself
// beyond 1024 PiB.
func niceBytes(n int64) int64 {
	for unit := int64(1 << 10); unit <= 1<<50; unit <<= 10 {
		for _, m := range []int64{4, 8, 16, 32, 64, 128, 256, 512, 1024} {
			if n <= m*unit {
				return m * unit
			}
		}
	}
	return n
}
