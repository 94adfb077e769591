// Command loadgen drives the router's gRPC API for bench/routing_grpc.py from outside the Python runtime, so the
// load generator's own CPU (0.6 ms per call for the Python gRPC client) is not taken from the router on a small
// machine. It sends pre-encoded protobuf messages through a pass-through codec: no generated Go code to keep in
// step with proto/, and the three messages it sends are spelled out below with their field numbers.
//
// It runs the measurement the bench describes and prints one JSON object with every latency, in seconds. With
// -serve it is instead the reference server of bench/grpc_empty.py: an empty unary call served by grpc-go, the
// floor this machine gives any gRPC call, whatever the language.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec passes requests through (they are encoded here) and keeps a response's bytes only where asked to
// (a nil response: the OK status is the answer).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	if response, ok := v.(*[]byte); ok && response != nil {
		*response = append((*response)[:0], data...) // data is the transport's buffer, reused after this call
	}
	return nil
}
func (rawCodec) Name() string { return "proto" }

// Field numbers from proto/callstream/routing/v1/routing.proto.
const (
	offerCallIDField  = 2  // OfferCallRequest.call_id
	offerQueueIDField = 3  // OfferCallRequest.queue_id
	cancelCallIDField = 2  // CancelCallRequest.call_id
	assignedField     = 10 // RoutingDecision.assigned, of the oneof outcome
)

func stringField(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

type client struct {
	conn        *grpc.ClientConn
	ctx         context.Context
	queue       string
	emptyMethod string
	timeout     time.Duration
	calls       atomic.Int64
}

func (c *client) invoke(method string, request []byte, response *[]byte) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	defer cancel()
	return c.conn.Invoke(ctx, method, &request, response, grpc.ForceCodec(rawCodec{}))
}

// hasField tells whether the encoded message has a field of that number.
func hasField(message []byte, field protowire.Number) (bool, error) {
	for len(message) > 0 {
		number, kind, n := protowire.ConsumeTag(message)
		if n < 0 {
			return false, protowire.ParseError(n)
		}
		if number == field {
			return true, nil
		}
		message = message[n:]
		if n = protowire.ConsumeFieldValue(number, kind, message); n < 0 {
			return false, protowire.ParseError(n)
		}
		message = message[n:]
	}
	return false, nil
}

// offer offers a new call, which must be assigned (the bench keeps more agents ready than calls in flight), and
// then cancels it (the caller hangs up, the agent is free again); it returns the OfferCall latency only.
func (c *client) offer() (float64, error) {
	id := "g" + strconv.FormatInt(c.calls.Add(1), 10)
	request := stringField(stringField(nil, offerCallIDField, id), offerQueueIDField, c.queue)
	var decision []byte
	began := time.Now()
	if err := c.invoke("/callstream.routing.v1.Router/OfferCall", request, &decision); err != nil {
		return 0, fmt.Errorf("OfferCall %s: %w", id, err)
	}
	took := time.Since(began).Seconds()
	if assigned, err := hasField(decision, assignedField); err != nil || !assigned {
		return 0, fmt.Errorf("OfferCall %s: the decision is not an assignment (%v): %x", id, err, decision)
	}
	cancel := stringField(nil, cancelCallIDField, id)
	if err := c.invoke("/callstream.routing.v1.Router/CancelCall", cancel, nil); err != nil {
		return 0, fmt.Errorf("CancelCall %s: %w", id, err)
	}
	return took, nil
}

// empty is the empty unary call: by default a gRPC health Check of the whole server (an empty HealthCheckRequest).
func (c *client) empty() (float64, error) {
	began := time.Now()
	if err := c.invoke(c.emptyMethod, nil, nil); err != nil {
		return 0, fmt.Errorf("%s: %w", c.emptyMethod, err)
	}
	return time.Since(began).Seconds(), nil
}

// closedLoop keeps `callers` calls in flight for `seconds`, each caller starting its next call when its last
// one ended; calls per second.
func closedLoop(call func() (float64, error), callers int, seconds float64) (float64, error) {
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var done atomic.Int64
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	began := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, err := call(); err != nil {
					errs <- err
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(done.Load()) / time.Since(began).Seconds(), nil
}

// cpuTimes reads the machine's CPU time counters (the first line of /proc/stat, clock ticks): all of them, and
// steal, the time the hypervisor gave this machine's runnable vCPUs to someone else.
func cpuTimes() (total, steal uint64, err error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal guest guest_nice
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, field := range fields[1:9] { // guest time is counted in user time already
		ticks, err := strconv.ParseUint(field, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += ticks
		if i == 7 {
			steal = ticks
		}
	}
	return total, steal, nil
}

// stealDuring runs `measure` and returns the share of the machine's CPU time stolen meanwhile (-1 where the
// counters cannot be read, as outside Linux).
func stealDuring(measure func() error) (float64, error) {
	total0, steal0, err0 := cpuTimes()
	if err := measure(); err != nil {
		return 0, err
	}
	total1, steal1, err1 := cpuTimes()
	if err0 != nil || err1 != nil || total1 == total0 {
		return -1, nil
	}
	return float64(steal1-steal0) / float64(total1-total0), nil
}

// paced starts `call` at `rate` per second for `seconds` without waiting for the earlier ones (open loop).
func paced(call func() (float64, error), rate, seconds float64) ([]float64, error) {
	n := int(rate * seconds)
	latencies := make([]float64, n)
	errs := make([]error, n)
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval))) // pacing the open-loop load
		wg.Add(1)
		go func() {
			defer wg.Done()
			latencies[i], errs[i] = call()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return latencies, nil
}

// figures are every latency of the run, in seconds, keyed by what was measured.
type figures struct {
	// Sequential calls, alternating empty call and offer (offers absent with -offers=false).
	Empty  []float64 `json:"empty"`
	Offers []float64 `json:"offers,omitempty"`
	// Offers (or empty calls) per second with -callers in flight.
	Rate float64 `json:"calls_per_s"`
	// Offers paced at half that rate, then the empty call paced the same way.
	Paced      []float64 `json:"paced,omitempty"`
	PacedEmpty []float64 `json:"paced_empty"`
	// Offers paced at each -sweep fraction of Rate, keyed by the fraction as given.
	Sweep map[string][]float64 `json:"sweep,omitempty"`
	// The share of the machine's CPU time the hypervisor stole during each paced load ("paced", "paced_empty",
	// and the sweep's fractions): on a shared host, what the machine had of its CPUs while it was measured.
	Steal map[string]float64 `json:"steal"`
}

// serve answers every unary call with an empty message (no routing, no log) until killed; it prints its port.
func serve() error {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)
	empty := func(_ any, stream grpc.ServerStream) error {
		var request []byte
		if err := stream.RecvMsg(&request); err != nil {
			return err
		}
		return stream.SendMsg(&[]byte{})
	}
	return grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(empty)).Serve(listener)
}

func run() error {
	serveOnly := flag.Bool("serve", false, "serve the empty call from Go instead (prints the port), until killed")
	addr := flag.String("addr", "", "server host:port")
	token := flag.String("token", "", "bearer token sent with every call")
	queue := flag.String("queue", "q", "queue every call is offered to")
	emptyMethod := flag.String("empty-method", "/grpc.health.v1.Health/Check", "the empty unary call (empty request)")
	offers := flag.Bool("offers", true, "measure OfferCall against the empty call; false: the empty call alone")
	samples := flag.Int("samples", 3000, "sequential samples (of each call) for the p50 and p99")
	warmUp := flag.Int("warm-up", 300, "untimed calls of each kind first")
	loadWarmUp := flag.Float64("load-warm-up-s", 0, "seconds of untimed closed-loop load after the warm-up")
	callers := flag.Int("callers", 32, "calls in flight in the closed loop")
	closedS := flag.Float64("closed-s", 5, "seconds of closed-loop load measuring calls per second")
	pacedS := flag.Float64("paced-s", 15, "seconds of each paced load at half that rate")
	sweep := flag.String("sweep", "", "comma-separated fractions of that rate to pace offers at as well")
	sweepCalls := flag.Int("sweep-calls", 2000, "calls at least in each sweep step (longer than -paced-s if need be)")
	flag.Parse()
	if *serveOnly {
		return serve()
	}
	if *addr == "" {
		return fmt.Errorf("-addr is required")
	}
	var fractions []string
	if *sweep != "" {
		fractions = strings.Split(*sweep, ",")
		for _, fraction := range fractions {
			if v, err := strconv.ParseFloat(fraction, 64); err != nil || v <= 0 || v > 1 {
				return fmt.Errorf("-sweep: %q is not a fraction in (0, 1]", fraction)
			}
		}
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := &client{conn: conn, queue: *queue, emptyMethod: *emptyMethod, timeout: 5 * time.Second,
		ctx: metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+*token)}
	measured := c.empty
	if *offers {
		measured = c.offer
	}
	for range *warmUp {
		if _, err := c.empty(); err != nil {
			return err
		}
		if *offers {
			if _, err := c.offer(); err != nil {
				return err
			}
		}
	}
	if *loadWarmUp > 0 {
		if _, err := closedLoop(measured, *callers, *loadWarmUp); err != nil {
			return err
		}
	}
	// The collector off while measuring (as timeit does): a pause here would be the load generator's own.
	debug.SetGCPercent(-1)
	var f figures
	for range *samples {
		e, err := c.empty()
		if err != nil {
			return err
		}
		f.Empty = append(f.Empty, e)
		if *offers {
			o, err := c.offer()
			if err != nil {
				return err
			}
			f.Offers = append(f.Offers, o)
		}
	}
	if f.Rate, err = closedLoop(measured, *callers, *closedS); err != nil {
		return err
	}
	f.Steal = map[string]float64{}
	pace := func(phase string, call func() (float64, error), rate, seconds float64) (latencies []float64, err error) {
		f.Steal[phase], err = stealDuring(func() (err error) {
			latencies, err = paced(call, rate, seconds)
			return err
		})
		return latencies, err
	}
	if *offers {
		if f.Paced, err = pace("paced", c.offer, f.Rate/2, *pacedS); err != nil {
			return err
		}
	}
	if f.PacedEmpty, err = pace("paced_empty", c.empty, f.Rate/2, *pacedS); err != nil {
		return err
	}
	if len(fractions) > 0 {
		f.Sweep = map[string][]float64{}
	}
	for _, fraction := range fractions {
		v, _ := strconv.ParseFloat(fraction, 64)
		rate := f.Rate * v
		seconds := max(*pacedS, float64(*sweepCalls)/rate)
		if f.Sweep[fraction], err = pace(fraction, measured, rate, seconds); err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(f)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
