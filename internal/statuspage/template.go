package statuspage

import "html/template"

// pageTemplate is the whole page: HTML, inline CSS and inline SVG, no
// script. html/template escapes every value by its context.
var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{.Refresh}}">
<link rel="icon" href="data:,">
<title>{{if eq .Overall "failing"}}[{{.Headline}}] {{end}}backupsync status · {{.Node}}</title>
<style>
:root{--ok:#166534;--okbg:#dcfce7;--fail:#b91c1c;--failbg:#fee2e2;--warn:#92400e;--warnbg:#fef3c7;--run:#1d4ed8;--runbg:#dbeafe;--never:#475569;--neverbg:#e2e8f0;--line:#d0d7de;--muted:#57606a}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;background:#f3f5f8}
header{background:#0f172a;color:#e2e8f0;padding:10px 24px;display:flex;align-items:baseline;gap:18px;flex-wrap:wrap}
header h1{font-size:17px;margin:0;font-weight:600;color:#fff}
header a{color:#93c5fd}
header .sp{flex:1}
main{max-width:1340px;margin:0 auto;padding:14px 20px 24px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;margin:0 0 14px;padding:12px 16px}
h2{font-size:15px;margin:0 0 8px;display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
h2 .muted{font-weight:400}
h3{font-size:13px;margin:12px 0 6px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-top:1px solid #eaeef2;vertical-align:top}
th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);border-top:0;padding-top:2px;white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap}
.nowrap{white-space:nowrap}
.muted{color:var(--muted)}
.small{font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px;white-space:nowrap;border:1px solid transparent}
tr.ok .badge,.badge.ok{background:var(--okbg);color:var(--ok)}
tr.failing .badge,.badge.failing{background:var(--fail);color:#fff}
tr.noanswer .badge,.badge.noanswer{background:#fff;color:var(--fail);border-color:var(--fail)}
tr.warn .badge,p.warn .badge,.badge.warn{background:var(--warnbg);color:var(--warn)}
tr.running .badge,.badge.running{background:var(--runbg);color:var(--run)}
tr.never .badge,.badge.never,tr.absent .badge,.badge.absent{background:var(--neverbg);color:var(--never)}
tr.failing,tr.noanswer{background:#fff4f4}
tr.failing td:first-child,tr.noanswer td:first-child{box-shadow:inset 4px 0 0 var(--fail)}
tr.running td:first-child{box-shadow:inset 4px 0 0 var(--run)}
.banner{display:flex;gap:12px;align-items:center;flex-wrap:wrap;padding:10px 16px;border-radius:6px;margin:0 0 14px;border:1px solid var(--line);background:#fff}
.banner.failing{border-color:var(--fail);background:var(--failbg)}
.banner.ok{border-color:#86efac;background:#f0fdf4}
.banner.warn{border-color:#fcd34d;background:#fffbeb}
.banner strong{font-size:16px}
.cause{margin:3px 0 0}
.next{margin:2px 0 0;color:#0f172a}
.next b{color:var(--fail)}
.bar{height:6px;background:#e2e8f0;border-radius:3px;overflow:hidden;width:260px;margin:4px 0 2px}
.bar span{display:block;height:100%;background:var(--run)}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:6px 20px;margin-top:10px}
figure{margin:0}
figcaption{font-size:12px;color:var(--muted)}
figcaption b{color:#1f2328}
svg.chart{width:100%;height:auto;display:block}
svg.chart text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#57606a}
svg.chart .plot{fill:#fbfcfd;stroke:#d0d7de}
svg.chart .grid{stroke:#eaeef2}
.legend{display:flex;gap:14px;font-size:12px;color:var(--muted);flex-wrap:wrap}
.legend svg{vertical-align:-1px}
.sets td{font-variant-numeric:tabular-nums}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 18px}
</style>
</head>
<body>
<header>
<h1>backupsync · cluster status</h1>
<span>answered by <b>{{.Node}}</b> at {{.Generated}}</span>
<span class="sp"></span>
<span class="small">times in UTC · reloads every {{.Refresh}} s · <a href="">reload now</a></span>
</header>
<main>
<div class="banner {{.Overall}}" id="summary">
<strong>{{if eq .Overall "failing"}}Attention: {{end}}{{.Headline}}</strong>
{{range .Summary}}<span class="badge {{.Class}}">{{.Text}}</span> {{end}}
</div>

<section id="nodes">
<h2>Nodes <span class="muted small">each node's daemon was asked for its part</span></h2>
<table>
<tr><th>Node</th><th>State</th><th>Plugin</th><th>Version</th><th class="num">Answered in</th><th>Detail</th></tr>
{{range .Nodes}}<tr class="{{.Class}}"><td class="nowrap"><b>{{.Name}}</b></td><td><span class="badge">{{.State}}</span></td><td>{{.Plugin}}</td><td>{{.Version}}</td><td class="num">{{.Took}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>
{{if .Skipped}}<p class="muted">{{.Skipped}} more node(s) not asked: the page asks at most 64.</p>{{end}}
</section>

{{range .Conns}}
<section class="conn" id="conn-{{.Name}}">
<h2>{{.Name}} {{if .Database}}<span class="muted">database {{.Database}}</span>{{end}}{{if .Failing}} <span class="badge failing">failing on {{.Failing}} node(s)</span>{{end}}</h2>
<table>
<tr><th>Node</th><th>Health</th><th>Detail</th><th class="num">Lag</th><th>Last cycle</th><th>Next run</th></tr>
{{range .Rows}}<tr class="{{.Class}}">
<td class="nowrap"><b>{{.Node}}</b></td>
<td><span class="badge">{{.Word}}</span></td>
<td>{{if .Since}}<span class="nowrap">{{.Since}}</span>{{end}}{{if .Detail}}{{if .Since}} · {{end}}{{.Detail}}{{end}}
{{with .Progress}}{{if ge .Pct 0}}<div class="bar"><span style="width:{{.Pct}}%"></span></div>{{end}}<div class="small">{{.Text}}</div>{{end}}
{{if .Cause}}<div class="cause">{{.Cause}}</div>{{end}}
{{if .Next}}<div class="next"><b>next step:</b> {{.Next}}</div>{{end}}</td>
<td class="num">{{.Lag}}</td>
<td><span class="nowrap">{{.LastCycle}}</span>{{if .LastSummary}}<div class="small muted">{{.LastSummary}}</div>{{end}}</td>
<td class="nowrap">{{.NextRun}}</td>
</tr>
{{end}}</table>
<div class="charts">
{{range $c := .Charts}}<figure>
<figcaption><b>{{.Title}}</b>{{if .Caption}} · {{.Caption}}{{end}}</figcaption>
<svg class="chart" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="{{.Title}}">
<rect class="plot" x="{{.Box.X}}" y="{{.Box.Y}}" width="{{.Box.W}}" height="{{.Box.H}}"/>
{{range .YTicks}}<line class="grid" x1="{{.X}}" x2="{{$c.Right}}" y1="{{.Y}}" y2="{{.Y}}"/><text x="{{.X}}" y="{{.Y}}" dx="-5" dy="4" text-anchor="end">{{.Label}}</text>
{{end}}{{range .XTicks}}<line class="grid" x1="{{.X}}" x2="{{.X}}" y1="{{$c.Box.Y}}" y2="{{.Y}}"/><text x="{{.X}}" y="{{.Y}}" dy="15" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Color}}"><title>{{.Title}}</title></rect>
{{end}}{{range .Lines}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.8" stroke-linejoin="round" points="{{.Points}}"><title>{{.Title}}</title></polyline>
{{end}}{{range .Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="3.2" fill="#dc2626" stroke="#fff" stroke-width="1"><title>{{.Title}}</title></circle>
{{end}}{{if .Empty}}<text x="{{.MidX}}" y="{{.MidY}}" text-anchor="middle">{{.Empty}}</text>{{end}}
</svg>
{{if .Legend}}<div class="legend">{{range .Legend}}<span><svg width="10" height="10"><rect width="10" height="10" fill="{{.Color}}"/></svg> {{.Node}}</span>{{end}}</div>{{end}}
</figure>
{{end}}</div>
</section>
{{else}}
<section id="conns"><h2>Connections</h2><p class="muted">No copying connection is configured on the nodes that answered. Upload the connections (UPLOAD_CONFIG, or <code>backupsyncctl pair</code>) and ACTIVATE them.</p></section>
{{end}}

{{if .Served}}
<section id="served">
<h2>Tunnels served <span class="muted small">SSH = server connections: the remote cluster's nodes copy into this cluster through them</span></h2>
<table>
<tr><th>Connection</th><th>Node</th><th>Health</th><th>Detail</th></tr>
{{range .Served}}<tr class="{{.Class}}"><td class="nowrap"><b>{{.Connection}}</b></td><td>{{.Node}}</td><td><span class="badge">{{.Word}}</span></td><td>{{.Line}}</td></tr>
{{end}}</table>
</section>
{{end}}

<section id="backups">
<h2>Backup sets <span class="muted small">on the source archive volumes; synced: every destination holds each file under its final name with its size</span></h2>
{{if .NoDBs}}<p class="muted">{{.NoDBs}}</p>{{end}}
{{range .DBs}}
<h3>Database {{.Name}} {{if .Listed}}<span class="muted small">listed {{.Listed}}{{if .Refreshing}}; a newer listing is under way{{end}}</span>{{end}}</h3>
{{range .Problems}}<p class="warn"><span class="badge">incomplete</span> {{.}}</p>{{end}}
{{if .Unconfigured}}<p class="muted">No node has a connection copying {{.Name}}.</p>
{{else if not .Sets}}<p class="muted">No backup set of {{.Name}} on the archive volumes.</p>
{{else}}<table class="sets">
<tr><th>Volume</th><th class="num">ID</th><th class="num">Level</th><th>Started</th><th class="num">Size</th><th>Usable</th><th>Set</th>{{range .Nodes}}<th>{{.}}</th>{{end}}</tr>
{{range .Sets}}<tr><td>{{.Volume}}</td><td class="num">{{.ID}}</td><td class="num">{{.Level}}</td><td class="nowrap">{{.Timestamp}}</td><td class="num">{{.Usage}}</td><td>{{if .Usable}}yes{{else}}<span class="muted" title="{{.Deps}}">no</span>{{end}}</td><td class="set-sync"><span class="badge {{.Class}}">{{.Word}}</span></td>{{range .Parts}}<td><span class="badge {{.Class}}">{{.Text}}</span></td>{{end}}</tr>
{{end}}</table>{{end}}
{{end}}
</section>
</main>
<footer>backupsync · the same health as STATUS, backupsyncctl status and /metrics (go doc backupsync/internal/health)</footer>
</body>
</html>
`))
