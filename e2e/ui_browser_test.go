package e2e

// Helpers of the browser tests (ui_test.go): finding and starting Debian's
// chromium headless through chromedp, one tab per signed-in session, the
// console errors of every tab, polling a page for a condition, and the
// screenshots of docs/ui.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// uiScreenshots makes TestUI write a 1280x800 screenshot of each page it
// visits to docs/ui/<page>.png (go test ./e2e -run TestUI -ui.screenshots).
var uiScreenshots = flag.Bool("ui.screenshots", false, "TestUI: write a 1280x800 screenshot of each page to docs/ui/<page>.png")

// uiWidth and uiHeight are the viewport of every tab, and so of the
// screenshots.
const uiWidth, uiHeight = 1280, 800

// chromiumPath finds the browser the tests drive: $ICE_CHROMIUM, else
// chromium (Debian's package) or chromium-browser on PATH. Without one the
// test fails: CI must run the browser tests, not skip them.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ICE_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("ICE_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the browser tests need chromium and found none on PATH (nor $ICE_CHROMIUM): run .ci/install-tools.sh, which installs Debian's chromium package")
	return ""
}

// serverSPKI returns the base64 SHA-256 of the public key of the TLS
// certificate the server at addr (https://host:port) presents, verified
// against the CA in caFile: what --ignore-certificate-errors-spki-list takes,
// so the browser trusts that server's certificate and no other.
func serverSPKI(t *testing.T, addr, caFile string) string {
	t.Helper()
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", caFile)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, ServerName: u.Hostname()})
	if err != nil {
		t.Fatalf("TLS to %s: %v", u.Host, err)
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		t.Fatalf("TLS to %s: no certificate", u.Host)
	}
	sum := sha256.Sum256(certs[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// uiBrowser is one headless chromium for a test, its tabs opened against
// base (the server's https:// address).
type uiBrowser struct {
	t    *testing.T
	base string
	ctx  context.Context // the browser; each tab is a child context

	mu   sync.Mutex
	errs []uiConsoleError
}

// uiConsoleError is an error a page wrote to its console, threw, or the
// browser logged for it (a failed request, a blocked resource), or a
// request the page made to another origin.
type uiConsoleError struct {
	tab, url, text string
	// network403 is a request the server refused: expected only where a
	// test makes the page attempt what its token may not do.
	network403 bool
}

func (e uiConsoleError) String() string {
	return fmt.Sprintf("tab %s, page %s: %s", e.tab, e.url, e.text)
}

// startUIBrowser starts chromium headless, trusting the server's
// certificate by its public key. The browser's own output goes to a file of
// dir, logged when the test fails.
func startUIBrowser(t *testing.T, chromium, base, caFile, dir string) *uiBrowser {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(filepath.Join(dir, "chromium-profile")),
		chromedp.WindowSize(uiWidth, uiHeight),
		chromedp.Flag("ignore-certificate-errors-spki-list", serverSPKI(t, base, caFile)),
		chromedp.DisableGPU,
		chromedp.CombinedOutput(out),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox (CI containers).
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first Run starts the browser, with its first tab (unused, so that
	// closing a test's tab never ends the browser).
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("start chromium %s: %v\n%s", chromium, err, b)
	}
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx)
		cancel()
		cancelAlloc()
		out.Close()
		if t.Failed() {
			if b, err := os.ReadFile(out.Name()); err == nil && len(b) > 0 {
				t.Logf("chromium output (D-Bus complaints left out):\n%s", tail(dropLines(string(b), "dbus/"), 40))
			}
		}
	})
	return &uiBrowser{t: t, base: strings.TrimRight(base, "/"), ctx: ctx}
}

// tab opens a new tab (its own session storage, so its own sign-in) at
// 1280x800 that records its console errors and accepts the dialogs its page
// opens (a confirm before a stop).
func (b *uiBrowser) tab(name string) context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(uiWidth, uiHeight)); err != nil {
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	var mu sync.Mutex
	current := "about:blank"
	err := chromedp.Listen(ctx, func(ev any) {
		var text string
		var refused bool
		switch ev := ev.(type) {
		case *page.EventFrameNavigated:
			if ev.Frame != nil && ev.Frame.ParentID == "" {
				mu.Lock()
				current = ev.Frame.URL
				mu.Unlock()
			}
			return
		case *network.EventRequestWillBeSent:
			// The UI is served from the binary and works offline: a page
			// asks nothing of another origin.
			u := ""
			if ev.Request != nil {
				u = ev.Request.URL
			}
			if u == b.base || strings.HasPrefix(u, b.base+"/") || !strings.HasPrefix(u, "http") {
				return
			}
			text = "request to an outside URL: " + u
		case *page.EventJavascriptDialogOpening:
			// Answering blocks on the tab's reader: not from here.
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}()
			return
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				switch {
				case len(a.Value) > 0:
					parts = append(parts, string(a.Value))
				case a.Description != "":
					parts = append(parts, a.Description)
				default:
					parts = append(parts, string(a.Type))
				}
			}
			text = "console.error: " + strings.Join(parts, " ")
		case *runtime.EventExceptionThrown:
			text = "uncaught exception"
			if d := ev.ExceptionDetails; d != nil {
				text += ": " + d.Text
				if d.Exception != nil && d.Exception.Description != "" {
					text += " " + d.Exception.Description
				}
				if d.URL != "" {
					text += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
				}
			}
		case *log.EventEntryAdded:
			e := ev.Entry
			if e == nil || e.Level != log.EntryLevelError {
				return
			}
			text = fmt.Sprintf("log %s: %s", e.Source, e.Text)
			if e.URL != "" {
				text += " (" + e.URL + ")"
			}
			refused = string(e.Source) == "network" && strings.Contains(e.Text, "status of 403")
		default:
			return
		}
		mu.Lock()
		at := current
		mu.Unlock()
		b.mu.Lock()
		b.errs = append(b.errs, uiConsoleError{tab: name, url: at, text: text, network403: refused})
		b.mu.Unlock()
	})
	if err != nil {
		b.t.Fatalf("listen to tab %s: %v", name, err)
	}
	return ctx
}

// consoleErrors returns the errors recorded so far.
func (b *uiBrowser) consoleErrors() []uiConsoleError {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]uiConsoleError(nil), b.errs...)
}

// open navigates the tab to path (like /ui/cluster) and waits for the load.
func (b *uiBrowser) open(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(b.base+path)); err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
}

// do runs actions on the tab with a deadline.
func (b *uiBrowser) do(t *testing.T, ctx context.Context, what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("%s: %v (page %s)", what, err, b.location(ctx))
	}
}

// clickLive clicks the element sel finds once there is one, in one step of
// the page's own JavaScript (HTMLElement.click: the handlers a mouse click
// runs). A live table replaces its rows as the cluster changes, so a node
// that chromedp found may be gone by the time its mouse click lands.
func (b *uiBrowser) clickLive(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	b.waitJS(t, ctx, uiWait, what,
		`(() => { const e = document.querySelector(`+jsString(sel)+`); if (e === null) return false; e.click(); return true })()`,
		`'no element matches ' + `+jsString(sel))
}

// location is the tab's URL, for messages.
func (b *uiBrowser) location(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(c, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

// eval evaluates a JavaScript expression in the tab.
func uiEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls the page until the JavaScript expression cond is truthy,
// for up to d; on timeout it fails with what, and with the value of the
// expression show (what the page shows instead).
func (b *uiBrowser) waitJS(t *testing.T, ctx context.Context, d time.Duration, what, cond, show string) {
	t.Helper()
	if msg := b.awaitJS(ctx, d, what, cond, show); msg != "" {
		t.Fatal(msg)
	}
}

// checkJS is waitJS that lets the test go on: it fails the test with an
// error, not a fatal one, and reports whether cond held.
func (b *uiBrowser) checkJS(t *testing.T, ctx context.Context, d time.Duration, what, cond, show string) bool {
	t.Helper()
	if msg := b.awaitJS(ctx, d, what, cond, show); msg != "" {
		t.Error(msg)
		return false
	}
	return true
}

// awaitJS polls for cond and returns "" or what the page shows instead.
func (b *uiBrowser) awaitJS(ctx context.Context, d time.Duration, what, cond, show string) string {
	if !b.pollJS(ctx, d, cond) {
		got := "?"
		if show != "" {
			c, cancel := context.WithTimeout(ctx, 3*time.Second)
			if v, err := chromedp.Run(c, chromedp.Evaluate[any](show)); err == nil {
				got = fmt.Sprintf("%v", v)
			} else {
				got = "(" + err.Error() + ")"
			}
			cancel()
		}
		return fmt.Sprintf("%s: not within %s on %s; the page shows %s", what, d, b.location(ctx), got)
	}
	return ""
}

// pollJS polls the page until cond is truthy, for up to d, polling again
// after a navigation (which ends a chromedp poll).
func (b *uiBrowser) pollJS(ctx context.Context, d time.Duration, cond string) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		c, cancel := context.WithTimeout(ctx, left)
		_, err := chromedp.Run(c, chromedp.Poll[any](cond,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(left)))
		cancel()
		if err == nil {
			return true
		}
		if errors.Is(err, chromedp.ErrPollingTimeout) || ctx.Err() != nil {
			return false
		}
		// The page navigated while polling: poll the new page, after a
		// moment for its document to exist.
		c, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
		<-c.Done()
		cancel()
	}
}

// screenshot writes docs/ui/<name>.png from the tab when -ui.screenshots.
func (b *uiBrowser) screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*uiScreenshots {
		return
	}
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "docs", "ui")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dropLines removes the lines of s that contain sub.
func dropLines(s, sub string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, sub) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
