package bench

import (
	"bytes"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/png"
	"math"
	"strconv"
	"strings"
)

// Series is one system's line in a chart panel.
type Series struct {
	Name  string
	Color color.RGBA
	X, Y  []float64
	// Dashed draws the line dashed (in the SVG; the PNG draws it thinner).
	Dashed bool
}

// Panel is one plot: y against clients (x, on a log2 axis), or, with
// LinearX, against any x on a linear axis with round ticks (lines only
// when a series has many points).
type Panel struct {
	Title  string
	YLabel string
	LogY   bool
	Series []Series
	// LinearX draws x on a linear axis labelled XLabel.
	LinearX bool
	XLabel  string
}

// Chart is a row of panels under a title, rendered to PNG or SVG.
type Chart struct {
	Title    string
	Subtitle string
	Panels   []Panel
	W, H     float64
	// Columns, when set, lays the panels out in rows of this many.
	Columns int
}

// Colours of the systems.
var (
	ColorICE      = color.RGBA{0x1f, 0x63, 0xc4, 0xff}
	ColorEtcd     = color.RGBA{0xe0, 0x6c, 0x00, 0xff}
	ColorRaw      = color.RGBA{0x2c, 0x9a, 0x2c, 0xff}
	ColorFollower = color.RGBA{0x7a, 0x9c, 0xd6, 0xff}
	ColorInsecure = color.RGBA{0x8e, 0x44, 0xad, 0xff}
	ColorRatioOps = color.RGBA{0x00, 0x89, 0x7b, 0xff}
	ColorRatioLat = color.RGBA{0xc0, 0x26, 0x2d, 0xff}
	colorText     = color.RGBA{0x22, 0x22, 0x22, 0xff}
	colorGrid     = color.RGBA{0xe2, 0xe2, 0xe2, 0xff}
	colorAxis     = color.RGBA{0x55, 0x55, 0x55, 0xff}
	colorWhite    = color.RGBA{0xff, 0xff, 0xff, 0xff}
)

type anchor int

const (
	anchorStart anchor = iota
	anchorMiddle
	anchorEnd
)

// canvas is what the chart draws on; y grows downwards. Text is placed by
// its vertical centre.
type canvas interface {
	rect(x, y, w, h float64, fill color.RGBA)
	line(x1, y1, x2, y2, width float64, c color.RGBA, dashed bool)
	circle(x, y, r float64, fill color.RGBA)
	text(x, y float64, s string, size float64, c color.RGBA, a anchor, vertical, bold bool)
	textWidth(s string, size float64) float64
}

// draw lays the chart out on cv.
func (ch *Chart) draw(cv canvas) {
	cv.rect(0, 0, ch.W, ch.H, colorWhite)
	cv.text(ch.W/2, 22, ch.Title, 16, colorText, anchorMiddle, false, true)
	if ch.Subtitle != "" {
		cv.text(ch.W/2, 44, ch.Subtitle, 12, colorAxis, anchorMiddle, false, false)
	}
	// Legend: every distinct series name in order.
	type entry struct {
		name   string
		c      color.RGBA
		dashed bool
	}
	var legend []entry
	seen := map[string]bool{}
	for _, p := range ch.Panels {
		for _, s := range p.Series {
			if !seen[s.Name] {
				seen[s.Name] = true
				legend = append(legend, entry{s.Name, s.Color, s.Dashed})
			}
		}
	}
	lx := 70.0
	for _, e := range legend {
		cv.line(lx, 68, lx+26, 68, 3, e.c, e.dashed)
		cv.circle(lx+13, 68, 4, e.c)
		cv.text(lx+32, 68, e.name, 13, colorText, anchorStart, false, false)
		lx += 32 + cv.textWidth(e.name, 13) + 28
	}
	cols := len(ch.Panels)
	if ch.Columns > 0 && ch.Columns < cols {
		cols = ch.Columns
	}
	rows := (len(ch.Panels) + max(cols, 1) - 1) / max(cols, 1)
	pw, ph := ch.W/float64(max(cols, 1)), (ch.H-88)/float64(max(rows, 1))
	for i := range ch.Panels {
		ch.Panels[i].draw(cv, float64(i%cols)*pw, 88+float64(i/cols)*ph, pw, ph)
	}
}

func (p *Panel) draw(cv canvas, x0, y0, w, h float64) {
	left, right, top, bottom := x0+78, x0+w-24, y0+28, y0+h-52
	cv.text((left+right)/2, y0+10, p.Title, 13, colorText, anchorMiddle, false, true)
	// X: clients on a log2 axis, ticks at the measured levels.
	var xs []float64
	seenX := map[float64]bool{}
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for i, x := range s.X {
			if !seenX[x] {
				seenX[x] = true
				xs = append(xs, x)
			}
			if y := s.Y[i]; y > 0 && !math.IsNaN(y) {
				ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
			}
		}
	}
	if len(xs) == 0 || math.IsInf(ymax, 0) {
		cv.text((left+right)/2, (top+bottom)/2, "no data", 13, colorAxis, anchorMiddle, false, false)
		return
	}
	xt, xticks, xlabel := p.xAxis(xs)
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		xlo, xhi = math.Min(xlo, xt(x)), math.Max(xhi, xt(x))
	}
	if p.LinearX && len(xticks) > 0 {
		xlo, xhi = math.Min(xlo, xticks[0]), math.Max(xhi, xticks[len(xticks)-1])
	}
	if xhi == xlo {
		xlo, xhi = xlo-1, xhi+1
	}
	pad := (xhi - xlo) * 0.06
	if p.LinearX {
		pad = 0
	}
	xlo, xhi = xlo-pad, xhi+pad
	px := func(x float64) float64 { return left + (xt(x)-xlo)/(xhi-xlo)*(right-left) }

	var ticks []float64
	var ylo, yhi float64
	if p.LogY {
		ylo = math.Pow(10, math.Floor(math.Log10(ymin)))
		yhi = math.Pow(10, math.Ceil(math.Log10(ymax)))
		if yhi <= ylo {
			yhi = ylo * 10
		}
		for v := ylo; v <= yhi*1.0001; v *= 10 {
			ticks = append(ticks, v)
		}
	} else {
		step := niceStep(ymax / 5)
		ylo, yhi = 0, math.Ceil(ymax*1.08/step)*step
		for v := 0.0; v <= yhi+step/2; v += step {
			ticks = append(ticks, v)
		}
	}
	py := func(y float64) float64 {
		if p.LogY {
			return bottom - (math.Log10(y)-math.Log10(ylo))/(math.Log10(yhi)-math.Log10(ylo))*(bottom-top)
		}
		return bottom - (y-ylo)/(yhi-ylo)*(bottom-top)
	}
	for _, t := range ticks {
		y := py(t)
		cv.line(left, y, right, y, 1, colorGrid, false)
		cv.text(left-8, y, formatTick(t), 11, colorText, anchorEnd, false, false)
	}
	for _, x := range xticks {
		cv.line(px(x), top, px(x), bottom, 1, colorGrid, false)
		cv.line(px(x), bottom, px(x), bottom+5, 1, colorAxis, false)
		label := strconv.FormatFloat(x, 'f', -1, 64)
		if p.LinearX {
			label = formatTick(x)
		}
		cv.text(px(x), bottom+15, label, 11, colorText, anchorMiddle, false, false)
	}
	cv.line(left, top, left, bottom, 1, colorAxis, false)
	cv.line(left, bottom, right, bottom, 1, colorAxis, false)
	cv.text((left+right)/2, bottom+36, xlabel, 12, colorText, anchorMiddle, false, false)
	cv.text(x0+16, (top+bottom)/2, p.YLabel, 12, colorText, anchorMiddle, true, false)
	for _, s := range p.Series {
		width := 2.5
		if s.Dashed {
			width = 2
		}
		var prevX, prevY float64
		for i := range s.X {
			if s.Y[i] <= 0 || math.IsNaN(s.Y[i]) {
				continue
			}
			x, y := px(s.X[i]), py(s.Y[i])
			if i > 0 && s.Y[i-1] > 0 {
				cv.line(prevX, prevY, x, y, width, s.Color, s.Dashed)
			}
			prevX, prevY = x, y
		}
		if p.LinearX && len(s.X) > maxMarkers {
			continue
		}
		for i := range s.X {
			if s.Y[i] > 0 && !math.IsNaN(s.Y[i]) {
				cv.circle(px(s.X[i]), py(s.Y[i]), 4.5, s.Color)
			}
		}
	}
}

// maxMarkers is the most points of a series a LinearX panel marks with
// dots; longer series are drawn as lines only.
const maxMarkers = 40

// xAxis returns the panel's x transform, its ticks (the measured levels on
// the log2 clients axis; round values from 0 on a linear one) and label.
func (p *Panel) xAxis(xs []float64) (func(float64) float64, []float64, string) {
	if !p.LinearX {
		return math.Log2, xs, "concurrent clients (log scale)"
	}
	xmax := 0.0
	for _, x := range xs {
		xmax = math.Max(xmax, x)
	}
	step := niceStep(xmax / 5)
	var ticks []float64
	for v := 0.0; v <= xmax+step*0.999; v += step {
		ticks = append(ticks, v)
	}
	return func(x float64) float64 { return x }, ticks, p.XLabel
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func formatTick(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + "k"
	case v >= 1:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// PNG renders the chart.
func (ch *Chart) PNG() ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, int(ch.W), int(ch.H)))
	ch.draw(&pngCanvas{img: img})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SVG renders the chart as an inline <svg> element.
func (ch *Chart) SVG() string {
	cv := &svgCanvas{}
	fmt.Fprintf(&cv.b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" font-family="sans-serif">`+"\n", ch.W, ch.H, ch.W, ch.H)
	ch.draw(cv)
	cv.b.WriteString("</svg>\n")
	return cv.b.String()
}

type pngCanvas struct{ img *image.RGBA }

func (c *pngCanvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Rect) {
		c.img.SetRGBA(x, y, col)
	}
}

func (c *pngCanvas) rect(x, y, w, h float64, fill color.RGBA) {
	for j := int(y); j < int(y+h); j++ {
		for i := int(x); i < int(x+w); i++ {
			c.set(i, j, fill)
		}
	}
}

func (c *pngCanvas) disc(x, y, r float64, col color.RGBA) {
	for j := int(math.Floor(y - r)); j <= int(math.Ceil(y+r)); j++ {
		for i := int(math.Floor(x - r)); i <= int(math.Ceil(x+r)); i++ {
			dx, dy := float64(i)-x, float64(j)-y
			if dx*dx+dy*dy <= r*r {
				c.set(i, j, col)
			}
		}
	}
}

func (c *pngCanvas) line(x1, y1, x2, y2, width float64, col color.RGBA, dashed bool) {
	dx, dy := x2-x1, y2-y1
	n := int(math.Max(math.Abs(dx), math.Abs(dy))) + 1
	for k := 0; k <= n; k++ {
		if dashed && (k/6)%2 == 1 {
			continue
		}
		t := float64(k) / float64(n)
		x, y := x1+t*dx, y1+t*dy
		if width <= 1 {
			c.set(int(math.Round(x)), int(math.Round(y)), col)
		} else {
			c.disc(x, y, width/2, col)
		}
	}
}

func (c *pngCanvas) circle(x, y, r float64, fill color.RGBA) {
	c.disc(x, y, r+1, colorWhite)
	c.disc(x, y, r, fill)
}

func pngScale(size float64) int {
	if size >= 13 {
		return 2
	}
	return 1
}

func (c *pngCanvas) textWidth(s string, size float64) float64 {
	k := pngScale(size)
	return float64(len([]rune(s))*6*k - k)
}

func (c *pngCanvas) text(x, y float64, s string, size float64, col color.RGBA, a anchor, vertical, bold bool) {
	scale := pngScale(size)
	runes := []rune(s)
	width := float64(len(runes)*6*scale - scale)
	off := 0.0
	switch a {
	case anchorMiddle:
		off = -width / 2
	case anchorEnd:
		off = -width
	}
	for k, r := range runes {
		g := glyph(r)
		for col5 := 0; col5 < 5; col5++ {
			for row := 0; row < 7; row++ {
				if g[col5]&(1<<row) == 0 {
					continue
				}
				// Position along the text and across it, from its centre.
				along := off + float64((k*6+col5)*scale)
				across := float64(row*scale) - float64(7*scale)/2
				for sy := 0; sy < scale; sy++ {
					for sx := 0; sx < scale; sx++ {
						extra := 0
						if bold {
							extra = 1
						}
						for b := 0; b <= extra; b++ {
							if vertical {
								c.set(int(x+across)+sy, int(y-along)-sx-b, col)
							} else {
								c.set(int(x+along)+sx+b, int(y+across)+sy, col)
							}
						}
					}
				}
			}
		}
	}
}

type svgCanvas struct{ b strings.Builder }

func svgColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

func (c *svgCanvas) rect(x, y, w, h float64, fill color.RGBA) {
	fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, w, h, svgColor(fill))
}

func (c *svgCanvas) line(x1, y1, x2, y2, width float64, col color.RGBA, dashed bool) {
	dash := ""
	if dashed {
		dash = ` stroke-dasharray="6 5"`
	}
	fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s stroke-linecap="round"/>`+"\n", x1, y1, x2, y2, svgColor(col), width, dash)
}

func (c *svgCanvas) circle(x, y, r float64, fill color.RGBA) {
	fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s" stroke="#fff" stroke-width="1"/>`+"\n", x, y, r, svgColor(fill))
}

func (c *svgCanvas) textWidth(s string, size float64) float64 {
	return float64(len([]rune(s))) * size * 0.6
}

func (c *svgCanvas) text(x, y float64, s string, size float64, col color.RGBA, a anchor, vertical, bold bool) {
	anchors := [...]string{"start", "middle", "end"}
	extra := ""
	if vertical {
		extra = fmt.Sprintf(` transform="rotate(-90 %.1f %.1f)"`, x, y)
	}
	if bold {
		extra += ` font-weight="bold"`
	}
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="%g" fill="%s" text-anchor="%s" dominant-baseline="middle"%s>%s</text>`+"\n",
		x, y, size, svgColor(col), anchors[a], extra, html.EscapeString(s))
}
