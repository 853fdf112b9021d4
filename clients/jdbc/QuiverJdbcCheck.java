import java.math.BigDecimal;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Drives Quiver's Flight SQL endpoint through the Apache Arrow Flight SQL JDBC driver, as DBeaver does,
 * and prints what the driver answers as JSON lines, so that a test can compare them with PostgreSQL's
 * own answers (tests/integration/flight/sql/test_jdbc.py).
 *
 * <pre>
 * java --add-opens=java.base/java.nio=ALL-UNNAMED -cp driver.jar:. QuiverJdbcCheck URL COMMAND ...
 *   metadata SCHEMA TABLE PARENT     DatabaseMetaData: product, catalogs, schemas, table types, tables,
 *                                    TABLE's columns, primary key and imported keys, PARENT's exported keys
 *   query SQL                        a Statement: column labels, JDBC types, then one line per row
 *   prepared SQL P... [-- P...]...   a PreparedStatement executed once per run of parameters (split by --);
 *                                    a parameter is int:N, long:N or str:TEXT
 * </pre>
 *
 * A failure prints one line {"kind": "error", "class", "sqlstate", "status" (the Flight status code), "message",
 * "causes"} and exits with 1. No stack trace, and the driver's own java.util.logging is silenced, because the
 * test checks what reaches a JDBC user; -Dquiver.trace=1 brings both back for debugging.
 */
public final class QuiverJdbcCheck {
  private static final DateTimeFormatter MICROSECONDS = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSSSS");

  private QuiverJdbcCheck() {}

  public static void main(String[] args) {
    if (args.length < 2) {
      System.err.println("usage: QuiverJdbcCheck URL (metadata SCHEMA TABLE PARENT | query SQL | prepared SQL P...)");
      System.exit(2);
    }
    if (System.getProperty("quiver.trace") == null) {
      // the driver logs its own failures with stack traces through java.util.logging; the answer is ours
      Logger.getLogger("").setLevel(Level.OFF);
    }
    try (Connection connection = DriverManager.getConnection(args[0])) {
      String[] rest = Arrays.copyOfRange(args, 2, args.length);
      switch (args[1]) {
        case "metadata" -> metadata(connection.getMetaData(), rest[0], rest[1], rest[2]);
        case "query" -> query(connection, rest[0]);
        case "prepared" -> prepared(connection, rest[0], Arrays.copyOfRange(rest, 1, rest.length));
        default -> throw new IllegalArgumentException("unknown command " + args[1]);
      }
    } catch (SQLException | RuntimeException error) {
      System.out.println(failure(error));
      System.exit(1);
    }
  }

  private static void metadata(DatabaseMetaData meta, String schema, String table, String parent)
      throws SQLException {
    print("product", "name", meta.getDatabaseProductName(), "version", meta.getDatabaseProductVersion(),
        "driver", meta.getDriverName(), "driver_version", meta.getDriverVersion());
    try (ResultSet rs = meta.getCatalogs()) {
      while (rs.next()) {
        print("catalog", "name", rs.getString("TABLE_CAT"));
      }
    }
    try (ResultSet rs = meta.getSchemas()) {
      while (rs.next()) {
        print("schema", "catalog", rs.getString("TABLE_CATALOG"), "name", rs.getString("TABLE_SCHEM"));
      }
    }
    try (ResultSet rs = meta.getTableTypes()) {
      while (rs.next()) {
        print("table_type", "name", rs.getString("TABLE_TYPE"));
      }
    }
    tables(meta, "table", schema, null);
    tables(meta, "base_table", schema, new String[] {"TABLE"});
    try (ResultSet rs = meta.getColumns(null, schema, table, "%")) {
      while (rs.next()) {
        print("column", "table", rs.getString("TABLE_NAME"), "name", rs.getString("COLUMN_NAME"),
            "position", rs.getInt("ORDINAL_POSITION"), "data_type", rs.getInt("DATA_TYPE"),
            "type_name", rs.getString("TYPE_NAME"), "nullable", rs.getInt("NULLABLE"),
            "is_nullable", rs.getString("IS_NULLABLE"));
      }
    }
    try (ResultSet rs = meta.getPrimaryKeys(null, schema, table)) {
      while (rs.next()) {
        print("primary_key", "table", rs.getString("TABLE_NAME"), "column", rs.getString("COLUMN_NAME"),
            "sequence", rs.getInt("KEY_SEQ"), "name", rs.getString("PK_NAME"));
      }
    }
    keys("imported_key", meta.getImportedKeys(null, schema, table));
    keys("exported_key", meta.getExportedKeys(null, schema, parent));
  }

  private static void tables(DatabaseMetaData meta, String kind, String schema, String[] types)
      throws SQLException {
    try (ResultSet rs = meta.getTables(null, schema, "%", types)) {
      while (rs.next()) {
        print(kind, "catalog", rs.getString("TABLE_CAT"), "schema", rs.getString("TABLE_SCHEM"),
            "name", rs.getString("TABLE_NAME"), "type", rs.getString("TABLE_TYPE"));
      }
    }
  }

  private static void keys(String kind, ResultSet rs) throws SQLException {
    try (rs) {
      while (rs.next()) {
        print(kind, "pk_table", rs.getString("PKTABLE_NAME"), "pk_column", rs.getString("PKCOLUMN_NAME"),
            "fk_schema", rs.getString("FKTABLE_SCHEM"), "fk_table", rs.getString("FKTABLE_NAME"),
            "fk_column", rs.getString("FKCOLUMN_NAME"), "sequence", rs.getInt("KEY_SEQ"),
            "fk_name", rs.getString("FK_NAME"), "update_rule", rs.getInt("UPDATE_RULE"),
            "delete_rule", rs.getInt("DELETE_RULE"));
      }
    }
  }

  private static void query(Connection connection, String sql) throws SQLException {
    try (Statement statement = connection.createStatement(); ResultSet rs = statement.executeQuery(sql)) {
      rows(rs);
    }
  }

  private static void prepared(Connection connection, String sql, String[] parameters) throws SQLException {
    List<List<String>> runs = new ArrayList<>();
    runs.add(new ArrayList<>());
    for (String parameter : parameters) {
      if (parameter.equals("--")) {
        runs.add(new ArrayList<>());
      } else {
        runs.get(runs.size() - 1).add(parameter);
      }
    }
    try (PreparedStatement statement = connection.prepareStatement(sql)) {
      print("parameters", "count", statement.getParameterMetaData().getParameterCount());
      for (List<String> run : runs) {
        for (int i = 0; i < run.size(); i++) {
          bind(statement, i + 1, run.get(i));
        }
        try (ResultSet rs = statement.executeQuery()) {
          rows(rs);
        }
      }
    }
  }

  private static void bind(PreparedStatement statement, int index, String parameter) throws SQLException {
    int colon = parameter.indexOf(':');
    String kind = colon < 0 ? "" : parameter.substring(0, colon);
    String value = parameter.substring(colon + 1);
    switch (kind) {
      case "int" -> statement.setInt(index, Integer.parseInt(value));
      case "long" -> statement.setLong(index, Long.parseLong(value));
      case "str" -> statement.setString(index, value);
      default -> throw new IllegalArgumentException("a parameter is int:N, long:N or str:TEXT, not " + parameter);
    }
  }

  private static void rows(ResultSet rs) throws SQLException {
    ResultSetMetaData meta = rs.getMetaData();
    int count = meta.getColumnCount();
    List<Object> labels = new ArrayList<>();
    List<Object> types = new ArrayList<>();
    for (int i = 1; i <= count; i++) {
      labels.add(meta.getColumnLabel(i));
      types.add(meta.getColumnType(i));
    }
    print("columns", "labels", labels, "types", types);
    while (rs.next()) {
      List<Object> values = new ArrayList<>();
      for (int i = 1; i <= count; i++) {
        int type = meta.getColumnType(i);
        // getTimestamp, not getObject: in driver 18.3.0 getObject(int) on TIMESTAMP_WITH_TIMEZONE throws
        // "not implemented" (apache/arrow-java#839, a driver bug fixed after 18.3.0)
        boolean timestamp = type == Types.TIMESTAMP || type == Types.TIMESTAMP_WITH_TIMEZONE;
        values.add(timestamp ? rs.getTimestamp(i) : rs.getObject(i));
      }
      print("row", "values", values);
    }
    print("end");
  }

  private static String failure(Exception error) {
    if (System.getProperty("quiver.trace") != null) {
      error.printStackTrace();
    }
    List<Object> causes = new ArrayList<>();
    String status = null;
    for (Throwable cause = error.getCause(); cause != null && causes.size() < 5; cause = cause.getCause()) {
      causes.add(cause.getClass().getName() + ": " + cause.getMessage());
      status = status != null ? status : flightStatus(cause);
    }
    String state = error instanceof SQLException sql ? sql.getSQLState() : null;
    return line("error", "class", error.getClass().getName(), "sqlstate", state, "status", status,
        "message", error.getMessage(), "causes", causes);
  }

  /** The Flight status code of a FlightRuntimeException (a shaded class: read by reflection), else null. */
  private static String flightStatus(Throwable cause) {
    try {
      Object callStatus = cause.getClass().getMethod("status").invoke(cause);
      return String.valueOf(callStatus.getClass().getMethod("code").invoke(callStatus));
    } catch (ReflectiveOperationException notFlight) {
      return null;
    }
  }

  private static void print(String kind, Object... pairs) {
    System.out.println(line(kind, pairs));
  }

  private static String line(String kind, Object... pairs) {
    StringBuilder out = new StringBuilder("{\"kind\":").append(json(kind));
    for (int i = 0; i < pairs.length; i += 2) {
      out.append(',').append(json(pairs[i])).append(':').append(json(pairs[i + 1]));
    }
    return out.append('}').toString();
  }

  /**
   * JSON for what a result set hands out: timestamps as ISO text to the microsecond in the JVM's zone (the test
   * runs it with user.timezone=UTC), bytes as hex, arrays as lists, decimals and anything else as text.
   */
  private static String json(Object value) {
    if (value == null) {
      return "null";
    }
    if (value instanceof Boolean || value instanceof Integer || value instanceof Long || value instanceof Short
        || value instanceof Byte) {
      return value.toString();
    }
    if (value instanceof Double || value instanceof Float) {
      double number = ((Number) value).doubleValue();
      return Double.isFinite(number) ? value.toString() : json(value.toString());
    }
    if (value instanceof BigDecimal decimal) {
      return json(decimal.toPlainString());
    }
    if (value instanceof Timestamp timestamp) {
      return json(timestamp.toLocalDateTime().format(MICROSECONDS));
    }
    if (value instanceof byte[] bytes) {
      StringBuilder hex = new StringBuilder();
      for (byte b : bytes) {
        hex.append(String.format("%02x", b & 0xff));
      }
      return json(hex.toString());
    }
    if (value instanceof Array array) {
      try {
        return json(Arrays.asList((Object[]) array.getArray()));
      } catch (SQLException error) {
        throw new IllegalStateException("reading an array: " + error.getMessage(), error);
      }
    }
    if (value instanceof List<?> list) {
      StringBuilder out = new StringBuilder("[");
      for (Object item : list) {
        out.append(out.length() > 1 ? "," : "").append(json(item));
      }
      return out.append(']').toString();
    }
    String text = value.toString();
    StringBuilder out = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    return out.append('"').toString();
  }
}
