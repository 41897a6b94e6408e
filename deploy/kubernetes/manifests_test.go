// The Kubernetes manifests, checked without a cluster: every document decodes
// strictly (no unknown or misplaced field) into the Kubernetes API type of its
// kind, and the invariants an ICE deployment relies on hold.
package kubernetes_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/ice-run/ice/deploy/internal/icecli"
)

// manifests holds every object of deploy/kubernetes/*.yaml by kind.
type manifests struct {
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	daemonSets   []*appsv1.DaemonSet
	pdbs         []*policyv1.PodDisruptionBudget
	jobs         []*batchv1.Job
}

func load(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocs(src) {
			where := fmt.Sprintf("%s, document %d", f, i+1)
			if err := m.decode(doc); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
	}
	return m
}

// splitDocs splits a YAML stream on "---" lines, dropping documents that
// hold only comments.
func splitDocs(src []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(src), -1) {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decode decodes one document strictly into the type its apiVersion and
// kind name.
func (m *manifests) decode(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Service":
		s := &corev1.Service{}
		m.services, obj = append(m.services, s), s
	case "apps/v1 StatefulSet":
		s := &appsv1.StatefulSet{}
		m.statefulSets, obj = append(m.statefulSets, s), s
	case "apps/v1 DaemonSet":
		d := &appsv1.DaemonSet{}
		m.daemonSets, obj = append(m.daemonSets, d), d
	case "batch/v1 Job":
		j := &batchv1.Job{}
		m.jobs, obj = append(m.jobs, j), j
	case "policy/v1 PodDisruptionBudget":
		p := &policyv1.PodDisruptionBudget{}
		m.pdbs, obj = append(m.pdbs, p), p
	default:
		return fmt.Errorf("unexpected apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Errorf("%s: strict decode: %w", tm.Kind, err)
	}
	return nil
}

func (m *manifests) service(t *testing.T, name string) *corev1.Service {
	t.Helper()
	for _, s := range m.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %q", name)
	return nil
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := load(t)
	if len(m.statefulSets) != 1 || len(m.daemonSets) != 1 || len(m.pdbs) != 1 || len(m.services) != 2 || len(m.jobs) != 1 {
		t.Fatalf("want 1 StatefulSet, 1 DaemonSet, 1 PodDisruptionBudget, 2 Services, 1 Job; got %d, %d, %d, %d, %d",
			len(m.statefulSets), len(m.daemonSets), len(m.pdbs), len(m.services), len(m.jobs))
	}
	// Strictness is what makes this test worth having: a misplaced field
	// must not pass.
	bad := []byte("apiVersion: apps/v1\nkind: StatefulSet\nspec:\n  replica: 3\n")
	if err := (&manifests{}).decode(bad); err == nil {
		t.Fatal("an unknown field decoded without error")
	}
}

func TestServerStatefulSet(t *testing.T) {
	m := load(t)
	ss := m.statefulSets[0]
	pod := &ss.Spec.Template
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Errorf("replicas: want 3, got %v", ss.Spec.Replicas)
	}
	if !selects(t, ss.Spec.Selector, pod.Labels) {
		t.Errorf("the StatefulSet's selector does not match its pod labels %v", pod.Labels)
	}

	// The headless Service gives each pod the stable name the servers join.
	hl := m.service(t, ss.Spec.ServiceName)
	if hl.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s: want clusterIP None (headless), got %q", hl.Name, hl.Spec.ClusterIP)
	}
	if !hl.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: servers must find one another before they are ready: want publishNotReadyAddresses", hl.Name)
	}
	if !labels.SelectorFromSet(hl.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Errorf("Service %s selects %v, not the server pods %v", hl.Name, hl.Spec.Selector, pod.Labels)
	}
	client := m.service(t, "ice")
	if client.Spec.ClusterIP == corev1.ClusterIPNone || !labels.SelectorFromSet(client.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Errorf("Service ice: want a cluster IP selecting the server pods")
	}
	if len(client.Spec.Ports) != 1 || client.Spec.Ports[0].Port != 7700 || client.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Errorf("Service ice: want port 7700 to the pods' http port, got %+v", client.Spec.Ports)
	}

	// One server per machine.
	aff := pod.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Fatal("no required pod anti-affinity")
	}
	term := aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0]
	if term.TopologyKey != "kubernetes.io/hostname" || !selects(t, term.LabelSelector, pod.Labels) {
		t.Errorf("anti-affinity: want topologyKey kubernetes.io/hostname selecting the server pods, got %+v", term)
	}

	// At most one server voluntarily down.
	pdb := m.pdbs[0]
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget: want maxUnavailable 1, got maxUnavailable %v minAvailable %v", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
	if !selects(t, pdb.Spec.Selector, pod.Labels) {
		t.Errorf("the PodDisruptionBudget's selector does not match the server pods %v", pod.Labels)
	}

	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := &pod.Spec.Containers[0]
	args := c.Args
	if len(args) == 0 || args[0] != "server" {
		t.Fatalf("args: want `server ...`, got %v", args)
	}
	if v := flagValues(args, "bootstrap-expect"); !slices.Equal(v, []string{"3"}) {
		t.Errorf("want --bootstrap-expect 3, got %v", v)
	}
	// --join: the three pods' stable DNS names, at the gossip port.
	joins := flagValues(args, "join")
	for i := range 3 {
		want := fmt.Sprintf("%s-%d.%s.$(POD_NAMESPACE).svc.cluster.local:7702", ss.Name, i, hl.Name)
		if !slices.Contains(joins, want) {
			t.Errorf("--join %s missing; joins: %v", want, joins)
		}
	}
	// Raft's address is the pod's stable name (it survives a new pod IP);
	// gossip and HTTP bind the pod IP (no 0.0.0.0: ICE advertises what it
	// binds).
	if v := flagValues(args, "raft"); !slices.Equal(v, []string{"$(POD_NAME)." + hl.Name + ".$(POD_NAMESPACE).svc.cluster.local:7701"}) {
		t.Errorf("--raft: got %v", v)
	}
	for _, f := range []string{"http", "gossip"} {
		if v := flagValues(args, f); len(v) != 1 || !strings.HasPrefix(v[0], "$(POD_IP):") {
			t.Errorf("--%s: want $(POD_IP):PORT, got %v", f, v)
		}
	}
	checkEnvRefs(t, c)
	checkPorts(t, c, map[string]int32{"http": 7700, "raft": 7701, "gossip-tcp": 7702, "gossip-udp": 7702})

	// The data dir is the volume claim, one per server.
	dataDir := flagValues(args, "data-dir")
	if len(dataDir) != 1 || len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("want one --data-dir and one volume claim template, got %v and %d", dataDir, len(ss.Spec.VolumeClaimTemplates))
	}
	claim := ss.Spec.VolumeClaimTemplates[0].Name
	if !mounted(c, claim, dataDir[0]) {
		t.Errorf("volume claim %q is not mounted at --data-dir %s", claim, dataDir[0])
	}
	if q := ss.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]; q.IsZero() {
		t.Error("the volume claim requests no storage")
	}

	// Probes ask the API's /v1/status on the http port, over HTTPS (it
	// answers without a token).
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/v1/status" || p.HTTPGet.Port.StrVal != "http" || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s probe: want GET /v1/status on port http over HTTPS, got %+v", name, p)
		}
	}
	checkSecure(t, pod, c, "ice-server-tls")
	if v := envValue(c, "ICE_ADDR"); !strings.HasPrefix(v, "https://") {
		t.Errorf("ICE_ADDR %q: the API is HTTPS", v)
	}
	checkNonRoot(t, pod)
}

func TestAgentDaemonSet(t *testing.T) {
	m := load(t)
	ds := m.daemonSets[0]
	pod := &ds.Spec.Template
	if !selects(t, ds.Spec.Selector, pod.Labels) {
		t.Errorf("the DaemonSet's selector does not match its pod labels %v", pod.Labels)
	}
	for _, s := range m.services {
		if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("Service %s selects the agent pods", s.Name)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := &pod.Spec.Containers[0]
	args := c.Args
	if len(args) == 0 || args[0] != "agent" {
		t.Fatalf("args: want `agent ...`, got %v", args)
	}
	hl := m.service(t, m.statefulSets[0].Spec.ServiceName)
	if v := flagValues(args, "join"); !slices.Equal(v, []string{hl.Name + ".$(POD_NAMESPACE).svc.cluster.local:7702"}) {
		t.Errorf("--join: want the servers' headless Service at the gossip port, got %v", v)
	}
	if v := flagValues(args, "gossip"); len(v) != 1 || !strings.HasPrefix(v[0], "$(POD_IP):") {
		t.Errorf("--gossip: want $(POD_IP):PORT, got %v", v)
	}
	if v := flagValues(args, "plugin-dir"); !slices.Equal(v, []string{"/plugins"}) {
		t.Errorf("--plugin-dir: want the image's /plugins, got %v", v)
	}
	dataDir := flagValues(args, "data-dir")
	if len(dataDir) != 1 || !mounted(c, "data", dataDir[0]) {
		t.Errorf("--data-dir %v is not a mounted volume", dataDir)
	}
	if !mounted(c, "tmp", "/tmp") {
		t.Error("plugins write to /tmp: want a volume there (the root filesystem is read-only)")
	}
	checkEnvRefs(t, c)
	checkPorts(t, c, map[string]int32{"gossip-tcp": 7702, "gossip-udp": 7702})
	checkSecure(t, pod, c, "ice-agent-tls")
	// Each agent presents the certificate of its own node.
	for _, f := range []string{"tls-cert", "tls-key"} {
		if v := flagValues(args, f); len(v) != 1 || !strings.Contains(v[0], "$(NODE_NAME)") {
			t.Errorf("--%s %v: want the file of this node, named by $(NODE_NAME)", f, v)
		}
	}
	checkNonRoot(t, pod)
}

func TestBootstrapJob(t *testing.T) {
	m := load(t)
	job := m.jobs[0]
	pod := &job.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := &pod.Spec.Containers[0]
	if len(c.Args) < 2 || c.Args[0] != "acl" || c.Args[1] != "bootstrap" {
		t.Fatalf("args: want `acl bootstrap ...`, got %v", c.Args)
	}
	file := flagValues(c.Args, "bootstrap-token-file")
	if len(file) != 1 {
		t.Fatalf("want --bootstrap-token-file, got %v", c.Args)
	}
	if secret, key, ok := secretOf(pod, c, file[0]); !ok || secret != "ice-bootstrap" || key != "token" {
		t.Errorf("--bootstrap-token-file %s: want key token of the Secret ice-bootstrap, got %q %q", file[0], secret, key)
	}
	if v := envValue(c, "ICE_ADDR"); !strings.HasPrefix(v, "https://ice.$(POD_NAMESPACE).svc") {
		t.Errorf("ICE_ADDR %q: want the Service ice over HTTPS", v)
	}
	if secret, key, ok := secretOf(pod, c, envValue(c, "ICE_CACERT")); !ok || secret != "ice-server-tls" || key != "ca.pem" {
		t.Errorf("ICE_CACERT: want ca.pem of the Secret ice-server-tls, got %q %q", secret, key)
	}
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "ice-server-tls" && (len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "ca.pem") {
			t.Errorf("volume %s: the Job needs the CA certificate only, not the servers' key: %+v", v.Name, v.Secret.Items)
		}
	}
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit < 3 {
		t.Error("want a backoffLimit that lets the Job wait for a leader")
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyOnFailure && pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q", pod.Spec.RestartPolicy)
	}
	checkEnvRefs(t, c)
	checkNonRoot(t, pod)
}

// TestArgsAreIceFlags checks the containers' command lines against the
// real binary's subcommands and flags.
func TestArgsAreIceFlags(t *testing.T) {
	m := load(t)
	bin := icecli.Build(t)
	var containers []corev1.Container
	containers = append(containers, m.statefulSets[0].Spec.Template.Spec.Containers...)
	containers = append(containers, m.daemonSets[0].Spec.Template.Spec.Containers...)
	containers = append(containers, m.jobs[0].Spec.Template.Spec.Containers...)
	for _, c := range containers {
		n := 1
		if c.Args[0] == "acl" {
			n = 2
		}
		sub := strings.Join(c.Args[:n], " ")
		flags := icecli.Flags(t, bin, sub)
		if err := icecli.CheckArgs(c.Args[n:], flags); err != nil {
			t.Errorf("container %s (`ice %s`): %v", c.Name, sub, err)
		}
	}
}

// flagValues returns the values of a flag given as "--name value" or
// "--name=value".
func flagValues(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if v, ok := strings.CutPrefix(args[i], "--"+name+"="); ok {
			out = append(out, v)
		} else if args[i] == "--"+name && i+1 < len(args) {
			out = append(out, args[i+1])
			i++
		}
	}
	return out
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("label selector %+v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

func mounted(c *corev1.Container, volume, path string) bool {
	for _, vm := range c.VolumeMounts {
		if vm.Name == volume && vm.MountPath == path && !vm.ReadOnly {
			return true
		}
	}
	return false
}

// checkEnvRefs checks that every $(VAR) in the args is an env var of the
// container (Kubernetes leaves unknown references as they are).
func checkEnvRefs(t *testing.T, c *corev1.Container) {
	t.Helper()
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	all := strings.Join(c.Args, " ")
	for _, e := range c.Env {
		all += " " + e.Value
	}
	for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(all, -1) {
		if !env[m[1]] {
			t.Errorf("container %s: $(%s) is not an env var of the container", c.Name, m[1])
		}
	}
}

func checkPorts(t *testing.T, c *corev1.Container, want map[string]int32) {
	t.Helper()
	got := map[string]int32{}
	for _, p := range c.Ports {
		got[p.Name] = p.ContainerPort
	}
	for name, port := range want {
		if got[name] != port {
			t.Errorf("container %s: port %s: want %d, got %d", c.Name, name, port, got[name])
		}
	}
	// The flags' ports are the declared ones.
	for _, a := range []struct{ flag, port string }{{"http", "http"}, {"gossip", "gossip-tcp"}} {
		v := flagValues(c.Args, a.flag)
		if len(v) == 1 && !bytes.HasSuffix([]byte(v[0]), fmt.Appendf(nil, ":%d", got[a.port])) {
			t.Errorf("container %s: --%s %s does not use port %s (%d)", c.Name, a.flag, v[0], a.port, got[a.port])
		}
	}
}

// checkNonRoot checks the pod runs as the image's unprivileged user.
func checkNonRoot(t *testing.T, pod *corev1.PodTemplateSpec) {
	t.Helper()
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 10001 {
		t.Errorf("want runAsNonRoot and runAsUser 10001 (the image's user), got %+v", sc)
	}
	if sc != nil && (sc.FSGroup == nil || *sc.FSGroup != 10001) {
		t.Error("want fsGroup 10001, so that the volumes are writable by the image's user")
	}
}

// checkSecure checks a server's or agent's container runs secure: its TLS
// files come from the Secret tlsSecret mounted read-only, its gossip key
// from the Secret ice-gossip, and --insecure is not given.
func checkSecure(t *testing.T, pod *corev1.PodTemplateSpec, c *corev1.Container, tlsSecret string) {
	t.Helper()
	if slices.Contains(c.Args, "--insecure") || len(flagValues(c.Args, "insecure")) > 0 {
		t.Errorf("container %s runs --insecure", c.Name)
	}
	for _, f := range []string{"tls-ca", "tls-cert", "tls-key"} {
		v := flagValues(c.Args, f)
		if len(v) != 1 {
			t.Errorf("container %s: want one --%s, got %v", c.Name, f, v)
			continue
		}
		if secret, _, ok := secretOf(pod, c, v[0]); !ok || secret != tlsSecret {
			t.Errorf("container %s: --%s %s is not in the Secret %s mounted read-only (got %q)", c.Name, f, v[0], tlsSecret, secret)
		}
	}
	if v := flagValues(c.Args, "gossip-key"); !slices.Equal(v, []string{"$(ICE_GOSSIP_KEY)"}) {
		t.Errorf("container %s: want --gossip-key $(ICE_GOSSIP_KEY), got %v", c.Name, v)
	}
	for _, e := range c.Env {
		if e.Name == "ICE_GOSSIP_KEY" {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "ice-gossip" || e.ValueFrom.SecretKeyRef.Key != "gossip-key" {
				t.Errorf("container %s: ICE_GOSSIP_KEY must come from key gossip-key of the Secret ice-gossip, got %+v", c.Name, e)
			}
			return
		}
	}
	t.Errorf("container %s has no env ICE_GOSSIP_KEY", c.Name)
}

// secretOf returns the Secret and key a file of the container comes from:
// the file is in a read-only mount of a Secret volume (its key is the
// file's name, or the item mapped to it).
func secretOf(pod *corev1.PodTemplateSpec, c *corev1.Container, file string) (secret, key string, ok bool) {
	for _, vm := range c.VolumeMounts {
		rel, found := strings.CutPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !found || !vm.ReadOnly {
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return v.Secret.SecretName, rel, true
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return v.Secret.SecretName, it.Key, true
				}
			}
		}
	}
	return "", "", false
}

func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
