package main

import (
	"fmt"
	"net/url"
	"time"
)

// What fetch does once its grant has ended (config after_end).
const (
	// afterEndRequest requests a new grant: the well-behaved default.
	afterEndRequest = "request"
	// afterEndKeepToken keeps presenting the ended grant's last token: a
	// misbehaving plugin, to show that the service refuses it.
	afterEndKeepToken = "keep-token"
)

const defaultInterval = 2 * time.Second

// config is fetch's component config.
type config struct {
	// url is what each call GETs.
	url string
	// scope is the capability scope requested; default
	// "net:http:<url's host>".
	scope string
	// interval is the pause between calls.
	interval time.Duration
	// purpose is what the grant request tells operators and the history.
	purpose string
	// afterEnd is afterEndRequest or afterEndKeepToken.
	afterEnd string
}

// parseConfig reads and checks the component's config.
func parseConfig(m map[string]string) (config, error) {
	c := config{
		url:      m["url"],
		scope:    m["scope"],
		interval: defaultInterval,
		purpose:  m["purpose"],
		afterEnd: m["after_end"],
	}
	if c.url == "" {
		return config{}, fmt.Errorf("config: url is required (the service to call, like http://127.0.0.1:8081/report)")
	}
	u, err := url.Parse(c.url)
	if err != nil {
		return config{}, fmt.Errorf("config: url %q: %w", c.url, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return config{}, fmt.Errorf("config: url %q: want an http:// or https:// URL with a host", c.url)
	}
	if c.scope == "" {
		c.scope = "net:http:" + u.Hostname()
	}
	if v := m["interval"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return config{}, fmt.Errorf("config: interval %q: want a positive duration like \"2s\"", v)
		}
		c.interval = d
	}
	if c.purpose == "" {
		c.purpose = "call " + c.url
	}
	switch c.afterEnd {
	case "":
		c.afterEnd = afterEndRequest
	case afterEndRequest, afterEndKeepToken:
	default:
		return config{}, fmt.Errorf("config: after_end %q: want %q or %q", c.afterEnd, afterEndRequest, afterEndKeepToken)
	}
	return c, nil
}
