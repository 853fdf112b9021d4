// Command quiver-flightsql-go talks Arrow Flight SQL to Quiver with arrow-go's
// flightsql client and prints what it reads as one JSON object on stdout.
//
//	quiver-flightsql-go -addr HOST:PORT [-token T] query SQL
//	quiver-flightsql-go -addr HOST:PORT [-token T] prepared SQL PARAMS_JSON [PARAMS_JSON]
//	quiver-flightsql-go -addr HOST:PORT [-token T] metadata DB_SCHEMA TABLE...
//	quiver-flightsql-go -addr HOST:PORT [-token T] cancel SQL
//
// Any failure prints {"error": {"code": <gRPC code name>, "message": ..., "call": ...}}
// and exits with status 2.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql/schema_ref"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// timeLayout is RFC 3339 in UTC with exactly six fractional digits.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// callError is a failed call, named for the report.
type callError struct {
	call string
	err  error
}

func (e *callError) Error() string { return e.call + ": " + e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

func failed(call string, err error) error {
	if err == nil {
		return nil
	}
	return &callError{call, err}
}

type field struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Nullable bool              `json:"nullable"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func fields(schema *arrow.Schema, withMetadata bool) []field {
	out := []field{}
	for _, f := range schema.Fields() {
		entry := field{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable}
		if withMetadata && f.Metadata.Len() > 0 {
			entry.Metadata = map[string]string{}
			for i, k := range f.Metadata.Keys() {
				entry.Metadata[k] = f.Metadata.Values()[i]
			}
		}
		out = append(out, entry)
	}
	return out
}

// result is what every endpoint of one FlightInfo carried, read in endpoint order.
type result struct {
	InfoSchema []field `json:"info_schema"`
	Schema     []field `json:"schema"`
	Endpoints  int     `json:"endpoints"`
	Batches    int     `json:"batches"`
	Rows       [][]any `json:"rows"`
	schema     *arrow.Schema
}

// objects gives the rows as column-name keyed objects.
func (r *result) objects() []map[string]any {
	out := []map[string]any{}
	for _, row := range r.Rows {
		object := map[string]any{}
		for c, f := range r.schema.Fields() {
			object[f.Name] = row[c]
		}
		out = append(out, object)
	}
	return out
}

// value renders row i of a as JSON: timestamps in UTC, decimals as strings,
// lists, structs and unions by their values, NaN and infinities as strings.
func value(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i)
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
	case *array.Map:
		start, end := a.ValueOffsets(i)
		pairs := make([][2]any, 0, end-start)
		for j := start; j < end; j++ {
			pairs = append(pairs, [2]any{value(a.Keys(), int(j)), value(a.Items(), int(j))})
		}
		return pairs
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
	case *array.DenseUnion:
		return value(a.Field(a.ChildID(i)), int(a.ValueOffset(i)))
	case *array.SparseUnion:
		return value(a.Field(a.ChildID(i)), i)
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

// readInfo reads every endpoint of info with DoGet, in order.
func readInfo(ctx context.Context, client *flightsql.Client, info *flight.FlightInfo) (*result, error) {
	infoSchema, err := flight.DeserializeSchema(info.Schema, memory.DefaultAllocator)
	if err != nil {
		return nil, failed("FlightInfo schema", err)
	}
	r := &result{InfoSchema: fields(infoSchema, false), Endpoints: len(info.Endpoint), Rows: [][]any{}}
	for _, endpoint := range info.Endpoint {
		reader, err := client.DoGet(ctx, endpoint.Ticket)
		if err != nil {
			return nil, failed("DoGet", err)
		}
		if r.schema == nil {
			r.schema = reader.Schema()
			r.Schema = fields(r.schema, false)
		} else if !r.schema.Equal(reader.Schema()) {
			reader.Release()
			return nil, failed("DoGet", fmt.Errorf("endpoint schemas differ: %s vs %s", r.schema, reader.Schema()))
		}
		for reader.Next() {
			batch := reader.RecordBatch()
			r.Batches++
			for row := range int(batch.NumRows()) {
				values := make([]any, batch.NumCols())
				for c, col := range batch.Columns() {
					values[c] = value(col, row)
				}
				r.Rows = append(r.Rows, values)
			}
		}
		err = reader.Err()
		reader.Release()
		if err != nil {
			return nil, failed("DoGet", err)
		}
	}
	if r.schema == nil { // no endpoints: the FlightInfo's schema is all there is
		r.schema = infoSchema
		r.Schema = r.InfoSchema
	}
	return r, nil
}

func query(ctx context.Context, client *flightsql.Client, sql string) (any, error) {
	info, err := client.Execute(ctx, sql)
	if err != nil {
		return nil, failed("Execute", err)
	}
	return readInfo(ctx, client, info)
}

// parameters builds a one-row record of the parameter schema from a JSON array.
func parameters(schema *arrow.Schema, text string) (arrow.RecordBatch, error) {
	decoder := json.NewDecoder(bytes.NewReader([]byte(text)))
	decoder.UseNumber()
	var values []any
	if err := decoder.Decode(&values); err != nil {
		return nil, fmt.Errorf("parameters are not a JSON array: %w", err)
	}
	if len(values) != schema.NumFields() {
		return nil, fmt.Errorf("%d parameter values for %d parameters (%s)", len(values), schema.NumFields(), schema)
	}
	builder := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer builder.Release()
	for i, v := range values {
		if err := appendValue(builder.Field(i), v); err != nil {
			return nil, fmt.Errorf("parameter %d (%s): %w", i+1, schema.Field(i).Type, err)
		}
	}
	return builder.NewRecordBatch(), nil
}

func appendValue(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	number, isNumber := v.(json.Number)
	text, isText := v.(string)
	switch b := b.(type) {
	case *array.Int64Builder:
		n, err := number.Int64()
		if !isNumber || err != nil {
			return fmt.Errorf("%v is not an int64", v)
		}
		b.Append(n)
	case *array.Int32Builder:
		n, err := strconv.ParseInt(string(number), 10, 32)
		if !isNumber || err != nil {
			return fmt.Errorf("%v is not an int32", v)
		}
		b.Append(int32(n))
	case *array.Int16Builder:
		n, err := strconv.ParseInt(string(number), 10, 16)
		if !isNumber || err != nil {
			return fmt.Errorf("%v is not an int16", v)
		}
		b.Append(int16(n))
	case *array.Float64Builder:
		f, err := number.Float64()
		if !isNumber || err != nil {
			return fmt.Errorf("%v is not a float64", v)
		}
		b.Append(f)
	case *array.Float32Builder:
		f, err := strconv.ParseFloat(string(number), 32)
		if !isNumber || err != nil {
			return fmt.Errorf("%v is not a float32", v)
		}
		b.Append(float32(f))
	case *array.BooleanBuilder:
		flag, ok := v.(bool)
		if !ok {
			return fmt.Errorf("%v is not a bool", v)
		}
		b.Append(flag)
	case *array.StringBuilder, *array.LargeStringBuilder:
		// PostgreSQL's numeric travels as text: a JSON number is sent as its digits.
		if isNumber {
			text, isText = string(number), true
		}
		if !isText {
			return fmt.Errorf("%v is not a string", v)
		}
		if sb, ok := b.(*array.StringBuilder); ok {
			sb.Append(text)
		} else {
			b.(*array.LargeStringBuilder).Append(text)
		}
	case *array.TimestampBuilder:
		moment, err := time.Parse(time.RFC3339Nano, text)
		if !isText || err != nil {
			return fmt.Errorf("%v is not an RFC 3339 timestamp", v)
		}
		unit := b.Type().(*arrow.TimestampType).Unit
		stamp, err := arrow.TimestampFromTime(moment, unit)
		if err != nil {
			return err
		}
		b.Append(stamp)
	case *array.Date32Builder:
		day, err := time.Parse(time.DateOnly, text)
		if !isText || err != nil {
			return fmt.Errorf("%v is not a date (YYYY-MM-DD)", v)
		}
		b.Append(arrow.Date32FromTime(day))
	default:
		return errors.New("unsupported parameter type")
	}
	return nil
}

type preparedOutput struct {
	ParameterSchema []field   `json:"parameter_schema"`
	DatasetSchema   []field   `json:"dataset_schema"`
	Runs            []*result `json:"runs"`
}

func prepared(ctx context.Context, client *flightsql.Client, sql string, params []string) (any, error) {
	statement, err := client.Prepare(ctx, sql)
	if err != nil {
		return nil, failed("Prepare", err)
	}
	out := preparedOutput{Runs: []*result{}}
	if statement.ParameterSchema() != nil {
		out.ParameterSchema = fields(statement.ParameterSchema(), false)
	}
	if statement.DatasetSchema() != nil {
		out.DatasetSchema = fields(statement.DatasetSchema(), false)
	}
	for _, text := range params {
		schema := statement.ParameterSchema()
		if schema == nil {
			schema = arrow.NewSchema(nil, nil)
		}
		batch, err := parameters(schema, text)
		if err != nil {
			_ = statement.Close(ctx)
			return nil, failed("SetParameters", err)
		}
		statement.SetParameters(batch)
		batch.Release()
		info, err := statement.Execute(ctx)
		if err != nil {
			_ = statement.Close(ctx)
			return nil, failed("PreparedStatement.Execute", err)
		}
		r, err := readInfo(ctx, client, info)
		if err != nil {
			_ = statement.Close(ctx)
			return nil, err
		}
		out.Runs = append(out.Runs, r)
	}
	return out, failed("PreparedStatement.Close", statement.Close(ctx))
}

// metadataResult is one metadata command's answer, checked against arrow-go's reference schema.
type metadataResult struct {
	Schema         []field          `json:"schema"`
	Reference      []field          `json:"reference_schema"`
	MatchesRef     bool             `json:"matches_reference_schema"`
	ReferenceOrder []string         `json:"reference_field_order"`
	ReferenceMatch bool             `json:"matches_reference_ignoring_order"`
	Rows           []map[string]any `json:"rows"`
}

// sameFields reports whether a and b have the same fields (name, type, nullability) in any order.
func sameFields(a, b *arrow.Schema) bool {
	if a.NumFields() != b.NumFields() {
		return false
	}
	for _, f := range b.Fields() {
		found, ok := a.FieldsByName(f.Name)
		if !ok || len(found) != 1 || !arrow.TypeEqual(found[0].Type, f.Type) || found[0].Nullable != f.Nullable {
			return false
		}
	}
	return true
}

func metadataCall(ctx context.Context, client *flightsql.Client, call string, reference *arrow.Schema,
	get func() (*flight.FlightInfo, error)) (*metadataResult, error) {
	info, err := get()
	if err != nil {
		return nil, failed(call, err)
	}
	r, err := readInfo(ctx, client, info)
	if err != nil {
		return nil, failed(call, err)
	}
	out := &metadataResult{Schema: r.Schema, Reference: fields(reference, false), Rows: r.objects(),
		ReferenceOrder: []string{}}
	for _, f := range reference.Fields() {
		out.ReferenceOrder = append(out.ReferenceOrder, f.Name)
	}
	out.MatchesRef = r.schema.Equal(reference)
	out.ReferenceMatch = sameFields(r.schema, reference)
	return out, nil
}

func metadataCommand(ctx context.Context, client *flightsql.Client, dbSchema string, tables []string) (any, error) {
	out := map[string]any{}
	keys := map[string]any{}
	out["keys"] = keys
	type step struct {
		name      string
		reference *arrow.Schema
		get       func() (*flight.FlightInfo, error)
	}
	steps := []step{
		{"GetCatalogs", schema_ref.Catalogs, func() (*flight.FlightInfo, error) { return client.GetCatalogs(ctx) }},
		{"GetDBSchemas", schema_ref.DBSchemas, func() (*flight.FlightInfo, error) {
			return client.GetDBSchemas(ctx, &flightsql.GetDBSchemasOpts{})
		}},
		{"GetTables", schema_ref.TablesWithIncludedSchema, func() (*flight.FlightInfo, error) {
			return client.GetTables(ctx, &flightsql.GetTablesOpts{DbSchemaFilterPattern: &dbSchema, IncludeSchema: true})
		}},
		{"GetTableTypes", schema_ref.TableTypes, func() (*flight.FlightInfo, error) { return client.GetTableTypes(ctx) }},
		{"GetSqlInfo", schema_ref.SqlInfo, func() (*flight.FlightInfo, error) {
			return client.GetSqlInfo(ctx, []flightsql.SqlInfo{flightsql.SqlInfoFlightSqlServerName,
				flightsql.SqlInfoFlightSqlServerVersion, flightsql.SqlInfoFlightSqlServerReadOnly})
		}},
		{"GetXdbcTypeInfo", schema_ref.XdbcTypeInfo, func() (*flight.FlightInfo, error) {
			return client.GetXdbcTypeInfo(ctx, nil)
		}},
	}
	for _, s := range steps {
		r, err := metadataCall(ctx, client, s.name, s.reference, s.get)
		if err != nil {
			return nil, err
		}
		out[s.name] = r
	}
	// GetTables with IncludeSchema: each table's schema, decoded, with its field metadata.
	for _, row := range out["GetTables"].(*metadataResult).Rows {
		encoded, _ := row["table_schema"].([]byte)
		schema, err := flight.DeserializeSchema(encoded, memory.DefaultAllocator)
		if err != nil {
			return nil, failed("GetTables table_schema", err)
		}
		row["table_schema"] = fields(schema, true)
	}
	for _, table := range tables {
		ref := flightsql.TableRef{DBSchema: &dbSchema, Table: table}
		perTable := map[string]any{}
		for _, s := range []step{
			{"GetPrimaryKeys", schema_ref.PrimaryKeys, func() (*flight.FlightInfo, error) { return client.GetPrimaryKeys(ctx, ref) }},
			{"GetImportedKeys", schema_ref.ImportedKeys, func() (*flight.FlightInfo, error) { return client.GetImportedKeys(ctx, ref) }},
			{"GetExportedKeys", schema_ref.ExportedKeys, func() (*flight.FlightInfo, error) { return client.GetExportedKeys(ctx, ref) }},
		} {
			r, err := metadataCall(ctx, client, s.name, s.reference, s.get)
			if err != nil {
				return nil, err
			}
			perTable[s.name] = r
		}
		keys[table] = perTable
	}
	return out, nil
}

type cancelOutput struct {
	Status      string  `json:"status"`
	DoGetCode   *string `json:"doget_code"`
	DoGetError  string  `json:"doget_error,omitempty"`
	DoGetEnded  bool    `json:"doget_ended"`
	DoGetRows   int64   `json:"doget_rows"`
	CancelAfter string  `json:"cancel_after"`
}

// cancel starts reading a slow query, cancels its FlightInfo after delay and
// reports how the read ended. It never cancels its own context (which would
// end the DoGet with a client-side Canceled); a read still running after wait
// is reported as such.
func cancel(ctx context.Context, client *flightsql.Client, sql string, delay, wait time.Duration) (any, error) {
	info, err := client.Execute(ctx, sql)
	if err != nil {
		return nil, failed("Execute", err)
	}
	if len(info.Endpoint) == 0 {
		return nil, failed("Execute", errors.New("the FlightInfo has no endpoint"))
	}
	type outcome struct {
		rows int64
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		var rows int64
		reader, err := client.DoGet(ctx, info.Endpoint[0].Ticket)
		if err == nil {
			for reader.Next() {
				rows += reader.RecordBatch().NumRows()
			}
			err = reader.Err()
			reader.Release()
		}
		done <- outcome{rows, err}
	}()
	time.Sleep(delay)
	cancelled, err := client.CancelFlightInfo(ctx, &flight.CancelFlightInfoRequest{Info: info})
	if err != nil {
		return nil, failed("CancelFlightInfo", err)
	}
	out := cancelOutput{Status: cancelled.GetStatus().String(), CancelAfter: delay.String()}
	select {
	case o := <-done:
		out.DoGetEnded = true
		out.DoGetRows = o.rows
		_, code, text := describe(o.err)
		if o.err == nil {
			code, text = codes.OK, ""
		}
		name := code.String()
		out.DoGetCode = &name
		out.DoGetError = text
	case <-time.After(wait):
	}
	return out, nil
}

// describe splits err into the failed call's name, its gRPC code and the status's
// own message (without the "rpc error: code = ... desc =" prefix).
func describe(err error) (call string, code codes.Code, text string) {
	var named *callError
	if errors.As(err, &named) {
		call, err = named.call, named.err
	}
	if s, ok := status.FromError(err); ok {
		return call, s.Code(), s.Message()
	}
	return call, codes.Unknown, err.Error()
}

func printJSON(v any) {
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(v); err != nil {
		fail(err)
	}
}

// fail prints err as {"error": {...}} and exits 2.
func fail(err error) {
	call, code, text := describe(err)
	printJSON(map[string]any{"error": map[string]any{"code": code.String(), "message": text, "call": call}})
	os.Exit(2)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: quiver-flightsql-go -addr HOST:PORT [-token T] "+
		"(query SQL | prepared SQL PARAMS_JSON [PARAMS_JSON] | metadata DB_SCHEMA TABLE... | cancel SQL)")
	os.Exit(64)
}

func main() {
	addr := flag.String("addr", "", "Flight SQL server address, host:port")
	token := flag.String("token", "", "bearer token sent on every call")
	delay := flag.Duration("cancel-after", 300*time.Millisecond, "cancel: how long the read runs before CancelFlightInfo")
	wait := flag.Duration("cancel-wait", 15*time.Second, "cancel: how long to wait for the read to end afterwards")
	flag.Parse()
	args := flag.Args()
	if *addr == "" || len(args) == 0 {
		usage()
	}

	client, err := flightsql.NewClient(*addr, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		fail(failed("NewClient", err))
	}
	defer client.Close()
	ctx := context.Background()
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}

	var out any
	switch command, rest := args[0], args[1:]; {
	case command == "query" && len(rest) == 1:
		out, err = query(ctx, client, rest[0])
	case command == "prepared" && len(rest) >= 2:
		out, err = prepared(ctx, client, rest[0], rest[1:])
	case command == "metadata" && len(rest) >= 1:
		out, err = metadataCommand(ctx, client, rest[0], rest[1:])
	case command == "cancel" && len(rest) == 1:
		out, err = cancel(ctx, client, rest[0], *delay, *wait)
	default:
		usage()
	}
	if err != nil {
		fail(err)
	}
	printJSON(out)
}
