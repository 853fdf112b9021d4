// Command quiver-flight-go reads a Quiver Arrow Flight stream with the Arrow Go
// library and prints it as one JSON object: the schema, row and batch counts, and
// every value (or, with -summary, per-column checksums).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/big"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// timeLayout is RFC 3339 with exactly six fractional digits.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

type field struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}

type output struct {
	Schema    []field          `json:"schema"`
	Rows      int64            `json:"rows"`
	Batches   int64            `json:"batches"`
	Columns   map[string][]any `json:"columns,omitzero"`
	Checksums map[string]any   `json:"checksums,omitzero"`
}

// result is what one stream (or several, merged) carried.
type result struct {
	schema  *arrow.Schema
	summary bool
	rows    int64
	batches int64
	values  [][]any    // per column, unless summary
	sums    []*big.Int // per int64 column, when summary
	lengths []int64    // bytes per string column, when summary
}

func newResult(schema *arrow.Schema, summary bool) *result {
	n := schema.NumFields()
	r := &result{schema: schema, summary: summary, values: make([][]any, n), sums: make([]*big.Int, n), lengths: make([]int64, n)}
	for i := range r.sums {
		r.sums[i] = new(big.Int)
	}
	return r
}

func (r *result) add(batch arrow.RecordBatch) {
	r.rows += batch.NumRows()
	r.batches++
	for c, col := range batch.Columns() {
		for i := range col.Len() {
			if !r.summary {
				r.values[c] = append(r.values[c], value(col, i))
				continue
			}
			if col.IsNull(i) {
				continue
			}
			switch col := col.(type) {
			case *array.Int64:
				r.sums[c].Add(r.sums[c], big.NewInt(col.Value(i)))
			case *array.String:
				r.lengths[c] += int64(len(col.Value(i)))
			case *array.LargeString:
				r.lengths[c] += int64(len(col.Value(i)))
			}
		}
	}
}

func (r *result) merge(o *result) error {
	if !r.schema.Equal(o.schema) {
		return fmt.Errorf("endpoint schemas differ: %s vs %s", r.schema, o.schema)
	}
	r.rows += o.rows
	r.batches += o.batches
	for c := range r.values {
		r.values[c] = append(r.values[c], o.values[c]...)
		r.sums[c].Add(r.sums[c], o.sums[c])
		r.lengths[c] += o.lengths[c]
	}
	return nil
}

func (r *result) output() output {
	out := output{Rows: r.rows, Batches: r.batches}
	if r.summary {
		out.Checksums = map[string]any{}
	} else {
		out.Columns = map[string][]any{}
	}
	for c, f := range r.schema.Fields() {
		out.Schema = append(out.Schema, field{f.Name, f.Type.String(), f.Nullable})
		switch {
		case !r.summary:
			out.Columns[f.Name] = r.values[c]
			if r.values[c] == nil {
				out.Columns[f.Name] = []any{} // an empty column, not null
			}
		case f.Type.ID() == arrow.INT64:
			out.Checksums[f.Name] = r.sums[c].String()
		case f.Type.ID() == arrow.STRING || f.Type.ID() == arrow.LARGE_STRING:
			out.Checksums[f.Name] = r.lengths[c]
		}
	}
	return out
}

// value renders row i of a as JSON: int64 and decimals as strings, timestamps in
// UTC, dictionaries as their values, lists and structs as arrays and objects.
func value(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Uint64:
		return strconv.FormatUint(a.Value(i), 10)
	case *array.Float32:
		return float(float64(a.Value(i)))
	case *array.Float64:
		return float(a.Value(i))
	case *array.Decimal128:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return a.Value(i).ToTime(unit).UTC().Format(timeLayout)
	case *array.Date32:
		return a.Value(i).ToTime().Format(time.DateOnly)
	case *array.Binary:
		return a.Value(i) // encoding/json writes []byte as base64
	case *array.Dictionary:
		return value(a.Dictionary(), a.GetValueIndex(i))
	case array.ListLike:
		start, end := a.ValueOffsets(i)
		items := make([]any, 0, end-start)
		for j := start; j < end; j++ {
			items = append(items, value(a.ListValues(), int(j)))
		}
		return items
	case *array.Struct:
		object := map[string]any{}
		for k, f := range a.DataType().(*arrow.StructType).Fields() {
			object[f.Name] = value(a.Field(k), i)
		}
		return object
	}
	return a.GetOneForMarshal(i)
}

// float keeps NaN and infinities, which JSON numbers cannot hold, as strings.
func float(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}

// read runs DoGet for one ticket and collects its stream.
func read(ctx context.Context, client flight.Client, ticket []byte, summary bool) (*result, error) {
	stream, err := client.DoGet(ctx, &flight.Ticket{Ticket: ticket})
	if err != nil {
		return nil, fmt.Errorf("DoGet: %w", err)
	}
	reader, err := flight.NewRecordReader(stream)
	if err != nil {
		return nil, fmt.Errorf("DoGet: %w", err)
	}
	defer reader.Release()
	r := newResult(reader.Schema(), summary)
	for reader.Next() {
		r.add(reader.RecordBatch())
	}
	if err := reader.Err(); err != nil {
		return nil, fmt.Errorf("DoGet: %w", err)
	}
	return r, nil
}

// readPath asks GetFlightInfo for an entity's endpoints, reads them all at once
// and merges them in endpoint order.
func readPath(ctx context.Context, client flight.Client, path string, summary bool) (*result, error) {
	info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{path}})
	if err != nil {
		return nil, fmt.Errorf("GetFlightInfo: %w", err)
	}
	schema, err := flight.DeserializeSchema(info.Schema, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("GetFlightInfo schema: %w", err)
	}
	parts := make([]*result, len(info.Endpoint))
	errs := make([]error, len(info.Endpoint))
	var wg sync.WaitGroup
	for i, endpoint := range info.Endpoint {
		wg.Go(func() { parts[i], errs[i] = read(ctx, client, endpoint.Ticket.Ticket, summary) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	merged := newResult(schema, summary)
	for _, part := range parts {
		if err := merged.merge(part); err != nil {
			return nil, err
		}
	}
	return merged, nil
}

func main() {
	addr := flag.String("addr", "", "Flight server address, host:port")
	token := flag.String("token", "", "bearer token sent on every call")
	ticket := flag.String("ticket", "", "raw ticket JSON for one DoGet")
	path := flag.String("path", "", "entity name: GetFlightInfo, then DoGet every endpoint")
	summary := flag.Bool("summary", false, "print per-column checksums instead of the values")
	flag.Parse()
	if *addr == "" || (*ticket == "") == (*path == "") {
		fmt.Fprintln(os.Stderr, "usage: quiver-flight-go -addr HOST:PORT [-token T] (-ticket JSON | -path ENTITY) [-summary]")
		os.Exit(2)
	}

	client, err := flight.NewClientWithMiddleware(*addr, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		fail(err)
	}
	defer client.Close()
	ctx := context.Background()
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}

	var r *result
	if *path != "" {
		r, err = readPath(ctx, client, *path, *summary)
	} else {
		r, err = read(ctx, client, []byte(*ticket), *summary)
	}
	if err != nil {
		fail(err)
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(r.output()); err != nil {
		fail(err)
	}
}

// fail reports err on stderr, led by its gRPC status code name when it has one.
func fail(err error) {
	if s, ok := status.FromError(err); ok {
		fmt.Fprintf(os.Stderr, "quiver-flight-go: %s: %v\n", s.Code(), err)
	} else {
		fmt.Fprintf(os.Stderr, "quiver-flight-go: %v\n", err)
	}
	os.Exit(1)
}
