# frozen_string_literal: true

# The re-entrancy matrix of docs/reentrancy.md, as plain Ruby (no RSpec): every public
# method of Packer, Unpacker, their Buffer views and MappedUnpacker, called from every
# context in which user code runs while one of their calls is in progress.
#
# The specs (spec/reentrancy_*_spec.rb) run ReentrancyMatrix.run(kind) in a child process
# (a regression here is typically a crash, which must fail the examples, not kill the
# run) and compare each cell with the table. A cell is
#
#   [outcome, after]
#
# outcome: "ok" or "ok <value>" when the call worked, "raise <Class>: <message>" when it
#          raised;
# after:   what the object does afterwards: for an Unpacker the value of the interrupted
#          read followed by every later read (up to EOF); for a Packer the output bytes
#          (hex) after the interrupted write finished and 09 was written; for
#          MappedUnpacker the interrupted read and the later reads.
#
# Values are made JSON-friendly by repr: Integers stay, Symbols become ":name", Strings
# their inspect, exceptions "!Class".
#
# Run by hand (prints the JSON):  ruby -I lib spec/support/reentrancy_matrix.rb unpacker
require "msgpack"
require "stringio"
require "tmpdir"

module ReentrancyMatrix
  REQUIRE_LINE = "require #{File.expand_path(__FILE__).dump}\n"

  # The ext type (id 1) the contexts decode and encode.
  class Ext; end

  # An object whose to_msgpack runs a hook, then writes 5.
  class Walked
    def initialize(&hook)
      @hook = hook
    end

    def to_msgpack(packer = nil)
      return MessagePack.pack(self) unless packer

      @hook.call(packer)
      packer.write(5)
    end
  end

  module_function

  def repr(value)
    case value
    when Exception then "!#{value.class}"
    when Symbol then ":#{value}"
    when String then value.inspect
    when Array then value.map { |v| repr(v) }
    when Hash then value.to_h { |k, v| [repr(k).to_s, repr(v)] }
    when Integer, Float, true, false, nil then value
    else value.class.name
    end
  end

  def hex(bytes)
    bytes.unpack1("H*").scan(/../).join(" ")
  end

  def outcome
    value = yield
    shown =
      case value
      when nil, true, false, Integer then value.inspect
      when Symbol then value.inspect
      when String then "\"#{hex(value)}\""
      when Array then value.all? { |v| v.is_a?(Integer) || v.is_a?(Symbol) } ? value.inspect : "Array"
      else value.class.name
      end
    "ok #{shown}"
  rescue Exception => e # rubocop:disable Lint/RescueException
    "raise #{e.class}: #{e.message.lines.first.to_s.chomp}"
  end

  def bin(hex)
    [hex.delete(" ")].pack("H*").b
  end

  # Reads until EOF (at most 8 objects): the "after" part of an Unpacker cell.
  def drain(unpacker)
    out = []
    8.times do
      out << repr(unpacker.read)
    rescue Exception => e # rubocop:disable Lint/RescueException
      out << repr(e)
      break
    end
    out
  end

  # ------------------------------------------------------------------ Unpacker

  UNPACKER_CALLS = {
    "read" => ->(u) { u.read },
    "unpack" => ->(u) { u.unpack },
    "skip" => ->(u) { u.skip },
    "skip_nil" => ->(u) { u.skip_nil },
    "read_array_header" => ->(u) { u.read_array_header },
    "read_map_header" => ->(u) { u.read_map_header },
    "full_unpack" => ->(u) { u.full_unpack },
    "each { }" => ->(u) { seen = []; u.each { |o| seen << o }; seen },
    "each.next" => ->(u) { u.each.next },
    "feed" => ->(u) { u.feed("\x63".b) },
    "feed_reference" => ->(u) { u.feed_reference("\x63".b) },
    "feed_each" => ->(u) { seen = []; u.feed_each("\x63".b) { |o| seen << o }; seen },
    "reset" => ->(u) { u.reset },
    "register_type" => ->(u) { u.register_type(9) { |d| d } },
    "registered_types" => ->(u) { u.registered_types.size },
    "type_registered?" => ->(u) { u.type_registered?(1) },
    "symbolize_keys?, freeze?, allow_unknown_ext?" => ->(u) { [u.symbolize_keys?, u.freeze?, u.allow_unknown_ext?] },
    "compact!" => ->(u) { u.compact! },
    "MessagePack.compact!" => ->(_u) { MessagePack.compact! },
    "buffer" => ->(u) { u.buffer },
    "buffer.size" => ->(u) { u.buffer.size },
    "buffer.empty?" => ->(u) { u.buffer.empty? },
    "buffer.to_s" => ->(u) { u.buffer.to_s },
    "buffer.to_a" => ->(u) { u.buffer.to_a.size },
    "buffer.io" => ->(u) { u.buffer.io },
    "buffer.flush" => ->(u) { u.buffer.flush },
    "buffer.close" => ->(u) { u.buffer.close },
    "buffer.<<" => ->(u) { u.buffer << "\x63".b },
    "buffer.write" => ->(u) { u.buffer.write("\x63".b) },
    "buffer.read" => ->(u) { u.buffer.read },
    "buffer.read(1)" => ->(u) { u.buffer.read(1) },
    "buffer.read_all(1)" => ->(u) { u.buffer.read_all(1) },
    "buffer.skip(1)" => ->(u) { u.buffer.skip(1) },
    "buffer.skip_all(1)" => ->(u) { u.buffer.skip_all(1) },
    "buffer.clear" => ->(u) { u.buffer.clear },
    "buffer.write_to" => ->(u) { u.buffer.write_to(StringIO.new) },
    "buffer.compact!" => ->(u) { u.buffer.compact! },
  }.freeze

  # "92 d4 01 00 06" = [ext 1, 6]; then 7, 8, [1, 2].
  PLAIN_TAIL = "07 08 92 01 02"

  # An Unpacker whose ext type 1 calls hook, and the bytes to feed it.
  def ext_unpacker(&hook)
    factory = MessagePack::Factory.new
    factory.register_type(1, Ext, packer: ->(_) { "\x00" }, unpacker: ->(_) { hook.call; :ext })
    [factory.unpacker, bin("92 d4 01 00 06 #{PLAIN_TAIL}")]
  end

  # Recursive ext type 1: the proc runs hook, then reads one object (the 05 the packer
  # wrote): the stream decodes to [[:rec, 5], 6].
  def recursive_unpacker(&hook)
    factory = MessagePack::Factory.new
    factory.register_type(1, Ext, packer: ->(_, pk) { pk.write(5) },
                                  unpacker: ->(u) { hook.call; [:rec, u.read] }, recursive: true)
    [factory.unpacker, bin("92 d4 01 05 06 #{PLAIN_TAIL}")]
  end

  # An IO-like source handing out one byte per readpartial; hook runs at the third call
  # (inside the first object: 92 05 were read). The stream decodes to [5, 6], 7, 8, [1, 2].
  def io_unpacker(&hook)
    data = StringIO.new(bin("92 05 06 #{PLAIN_TAIL}"))
    calls = 0
    io = Object.new
    io.define_singleton_method(:close) { nil }
    io.define_singleton_method(:readpartial) do |_n, buf = nil|
      calls += 1
      hook.call if calls == 3
      byte = data.read(1) or raise EOFError
      buf ? buf.replace(byte) : byte
    end
    MessagePack::Unpacker.new(io)
  end

  def unpacker_contexts
    {
      "ext proc" => ->(call) { same_thread(call) { |hook| ext_unpacker(&hook) } },
      "recursive ext proc" => ->(call) { same_thread(call) { |hook| recursive_unpacker(&hook) } },
      "IO callback" => ->(call) { same_thread(call) { |hook| [io_unpacker(&hook), nil] } },
      "each block" => lambda do |call|
        cells = %i[each feed_each].map do |how|
          res = nil
          u = MessagePack::Factory.new.unpacker
          bytes = bin("05 06 #{PLAIN_TAIL}")
          seen = []
          block = proc { |o| seen << o; res ||= outcome { call.(u) } }
          how == :each ? u.feed(bytes).each(&block) : u.feed_each(bytes, &block)
          [res, [repr(seen)] + drain(u)]
        end
        cells.uniq.size == 1 ? cells.first : ["each and feed_each differ: #{cells.inspect}", nil]
      end,
      "thread / ext proc" => ->(call) { from_other_thread(call) { |hook| ext_unpacker(&hook) } },
      "thread / recursive" => ->(call) { from_other_thread(call) { |hook| recursive_unpacker(&hook) } },
      "thread / IO" => ->(call) { from_other_thread(call) { |hook| [io_unpacker(&hook), nil] } },
    }
  end

  # The block makes [unpacker, bytes to feed] around a hook; the call runs in the hook
  # (once), on the reading thread.
  def same_thread(call)
    res = nil
    u = nil
    u, bytes = yield(-> { res ||= outcome { call.(u) } })
    u.feed(bytes) if bytes
    after = [repr(read_or_error(u))] + drain(u)
    [res, after]
  end

  def read_or_error(unpacker)
    unpacker.read
  rescue Exception => e # rubocop:disable Lint/RescueException
    e
  end

  # Thread A reads; when it is inside the hook, this thread makes the call, then lets
  # A finish.
  def from_other_thread(call)
    inside = Queue.new
    go_on = Queue.new
    u, bytes = yield(-> { inside << true; go_on.pop })
    u.feed(bytes) if bytes
    reader = Thread.new { read_or_error(u) }
    inside.pop
    res = outcome { call.(u) }
    go_on << true
    [res, [repr(reader.value)] + drain(u)]
  end

  # ------------------------------------------------------------------ Packer

  PACKER_CALLS = {
    "write" => ->(p) { p.write(3) },
    "pack" => ->(p) { p.pack(3) },
    "write_nil" => ->(p) { p.write_nil },
    "write_true" => ->(p) { p.write_true },
    "write_false" => ->(p) { p.write_false },
    "write_int" => ->(p) { p.write_int(3) },
    "write_float" => ->(p) { p.write_float(0.5) },
    "write_float32" => ->(p) { p.write_float32(0.5) },
    "write_string" => ->(p) { p.write_string("s") },
    "write_bin" => ->(p) { p.write_bin("b") },
    "write_bin_header" => ->(p) { p.write_bin_header(0) },
    "write_symbol" => ->(p) { p.write_symbol(:y) },
    "write_array" => ->(p) { p.write_array([]) },
    "write_hash" => ->(p) { p.write_hash({}) },
    "write_array_header" => ->(p) { p.write_array_header(0) },
    "write_map_header" => ->(p) { p.write_map_header(0) },
    "write_ext" => ->(p) { p.write_ext(1, "e") },
    "write_extension" => ->(p) { p.write_extension(MessagePack::ExtensionValue.new(1, "e")) },
    "flush" => ->(p) { p.flush },
    "reset" => ->(p) { p.reset },
    "clear" => ->(p) { p.clear },
    "size" => ->(p) { p.size },
    "empty?" => ->(p) { p.empty? },
    "to_s" => ->(p) { p.to_s },
    "to_str" => ->(p) { p.to_str },
    "to_a" => ->(p) { p.to_a.size },
    "full_pack" => ->(p) { p.full_pack },
    "write_to" => ->(p) { io = StringIO.new; p.write_to(io); io.string },
    "register_type" => ->(p) { p.register_type(9, Class.new) { |_| "" } },
    "registered_types" => ->(p) { p.registered_types.size },
    "type_registered?" => ->(p) { p.type_registered?(Ext) },
    "compatibility_mode?" => ->(p) { p.compatibility_mode? },
    "compact!" => ->(p) { p.compact! },
    "MessagePack.compact!" => ->(_p) { MessagePack.compact! },
    "MessagePack.pack (nested)" => ->(_p) { MessagePack.pack([7]) },
    "buffer" => ->(p) { p.buffer },
    "buffer.size" => ->(p) { p.buffer.size },
    "buffer.empty?" => ->(p) { p.buffer.empty? },
    "buffer.to_s" => ->(p) { p.buffer.to_s },
    "buffer.to_a" => ->(p) { p.buffer.to_a.size },
    "buffer.io" => ->(p) { p.buffer.io },
    "buffer.flush" => ->(p) { p.buffer.flush },
    "buffer.close" => ->(p) { p.buffer.close },
    "buffer.<<" => ->(p) { p.buffer << "\x03".b },
    "buffer.write" => ->(p) { p.buffer.write("\x03".b) },
    "buffer.read" => ->(p) { p.buffer.read },
    "buffer.read(1)" => ->(p) { p.buffer.read(1) },
    "buffer.read_all(1)" => ->(p) { p.buffer.read_all(1) },
    "buffer.skip(1)" => ->(p) { p.buffer.skip(1) },
    "buffer.skip_all(1)" => ->(p) { p.buffer.skip_all(1) },
    "buffer.clear" => ->(p) { p.buffer.clear },
    "buffer.write_to" => ->(p) { io = StringIO.new; p.buffer.write_to(io); io.string },
    "buffer.compact!" => ->(p) { p.buffer.compact! },
  }.freeze

  # What the Packer holds after the interrupted write finished and 09 was written.
  def packer_after(packer)
    packer.write(9)
    hex(packer.to_s)
  rescue Exception => e # rubocop:disable Lint/RescueException
    "!#{e.class}"
  end

  # A Packer whose ext type 1 packer proc (not recursive) runs hook and returns "x".
  def ext_packer(&hook)
    factory = MessagePack::Factory.new
    factory.register_type(1, Ext, packer: ->(_) { hook.call; "x" }, unpacker: ->(d) { d })
    factory.packer
  end

  # Recursive ext type 1: the proc runs hook, then writes 5.
  def recursive_packer(&hook)
    factory = MessagePack::Factory.new
    factory.register_type(1, Ext, packer: ->(_, pk) { hook.call; pk.write(5) },
                                  unpacker: ->(u) { u.read }, recursive: true)
    factory.packer
  end

  # Writes 0, then [1, <interrupting object>, 2].
  def walk(packer, interrupting)
    packer.write(0)
    packer.write([1, interrupting, 2])
  end

  def packer_contexts
    {
      "ext packer proc" => ->(call) { packer_same_thread(call) { |hook| [ext_packer(&hook), Ext.new] } },
      "recursive ext packer" => ->(call) { packer_same_thread(call) { |hook| [recursive_packer(&hook), Ext.new] } },
      "to_msgpack" => lambda do |call|
        packer_same_thread(call) { |hook| [MessagePack::Packer.new, Walked.new { |_| hook.call }] }
      end,
      "IO callback" => lambda do |call|
        res = nil
        packer = nil
        sink = +"".b
        packer = MessagePack::Packer.new(fake_sink(sink) { res ||= outcome { call.(packer) } })
        flush_walk(packer)
        [res, [hex(sink), hex(packer.to_s)]]
      end,
      "thread / to_msgpack" => lambda do |call|
        packer_from_other_thread(call, MessagePack::Packer.new) { |hook| Walked.new { |_| hook.call } }
      end,
      "thread / recursive" => lambda do |call|
        hook = nil
        pk = recursive_packer { hook.call }
        packer_from_other_thread(call, pk) { |h| hook = h; Ext.new }
      end,
      "thread / IO" => ->(call) { packer_io_other_thread(call) },
    }
  end

  # The block makes [packer, interrupting object] around a hook; the call runs in the hook
  # (once), on the writing thread.
  def packer_same_thread(call)
    res = nil
    pk = nil
    pk, interrupting = yield(-> { res ||= outcome { call.(pk) } })
    walk(pk, interrupting)
    after = packer_after(pk)
    [res, after]
  end

  # An IO-like sink appending to `sink`; its first write runs the hook first.
  def fake_sink(sink, &on_first_write)
    io = Object.new
    called = false
    io.define_singleton_method(:write) do |*chunks|
      unless called
        called = true
        on_first_write.call
      end
      chunks.each { |c| sink << c }
      chunks.sum(&:bytesize)
    end
    io.define_singleton_method(:flush) { self }
    io.define_singleton_method(:close) { nil }
    io
  end

  # 0 and [1, 2] written and flushed (the sink's first write: 00 92 01 02), then 09.
  def flush_walk(packer)
    packer.write(0)
    packer.write([1, 2])
    packer.flush
    packer.write(9)
    packer.flush
  end

  def packer_from_other_thread(call, packer)
    inside = Queue.new
    go_on = Queue.new
    interrupting = yield(-> { inside << true; go_on.pop })
    writer = Thread.new { walk(packer, interrupting) }
    inside.pop
    res = outcome { call.(packer) }
    go_on << true
    writer.join
    [res, packer_after(packer)]
  end

  # Thread A flushes to a sink whose write blocks; this thread makes the call meanwhile.
  def packer_io_other_thread(call)
    inside = Queue.new
    go_on = Queue.new
    sink = +"".b
    packer = MessagePack::Packer.new(fake_sink(sink) { inside << true; go_on.pop })
    writer = Thread.new { flush_walk(packer) }
    inside.pop
    res = outcome { call.(packer) }
    go_on << true
    writer.join
    [res, [hex(sink), hex(packer.to_s)]]
  end

  # ------------------------------------------------------------------ MappedUnpacker

  MAPPED_CALLS = {
    "read" => ->(m) { m.read },
    "unpack" => ->(m) { m.unpack },
    "skip" => ->(m) { m.skip },
    "full_unpack" => ->(m) { m.full_unpack },
    "each { }" => ->(m) { seen = []; m.each { |o| seen << o }; seen },
    "each.next" => ->(m) { m.each.next },
    "to_a" => ->(m) { m.to_a },
    "seek(0)" => ->(m) { m.seek(0) },
    "rewind" => ->(m) { m.rewind },
    "pos" => ->(m) { m.pos },
    "size" => ->(m) { m.size },
    "eof?" => ->(m) { m.eof? },
    "close" => ->(m) { m.close },
    "closed?" => ->(m) { m.closed? },
    "compact!" => ->(m) { m.compact! },
    "resident_size" => ->(m) { m.resident_size.is_a?(Integer) },
    "path" => ->(m) { m.path.is_a?(String) },
    "MessagePack.compact!" => ->(_m) { MessagePack.compact! },
  }.freeze

  def mapped_contexts(dir)
    hook = nil
    factory = MessagePack::Factory.new
    factory.register_type(1, Ext, packer: ->(_) { "\x00" }, unpacker: ->(_) { hook&.call; :ext })
    path = File.join(dir, "matrix.msgpack")
    File.binwrite(path, bin("92 d4 01 00 06 #{PLAIN_TAIL}"))
    {
      "ext proc" => lambda do |call|
        res = nil
        m = factory.open_file(path)
        hook = -> { res ||= outcome { call.(m) } }
        first = read_or_error(m)
        hook = nil
        cell = [res, [repr(first)] + drain(m)]
        m.close unless m.closed?
        cell
      end,
      "each block" => lambda do |call|
        res = nil
        m = factory.open_file(path)
        m.read
        seen = []
        ended = outcome { m.each { |o| seen << o; res ||= outcome { call.(m) } } }
        cell = [res, [repr(seen), ended] + drain(m)]
        m.close unless m.closed?
        cell
      end,
      "thread / ext proc" => lambda do |call|
        inside = Queue.new
        go_on = Queue.new
        m = factory.open_file(path)
        hook = -> { inside << true; go_on.pop }
        reader = Thread.new { read_or_error(m) }
        inside.pop
        hook = nil
        res = outcome { call.(m) }
        go_on << true
        cell = [res, [repr(reader.value)] + drain(m)]
        m.close unless m.closed?
        cell
      end,
    }
  end

  # ------------------------------------------------------------------ runner

  # {context => {method => [outcome, after]}}
  def run(kind)
    case kind
    when "unpacker" then table(unpacker_contexts, UNPACKER_CALLS)
    when "packer" then table(packer_contexts, PACKER_CALLS)
    when "mapped"
      Dir.mktmpdir("msgpack-reentrancy") { |dir| table(mapped_contexts(dir), MAPPED_CALLS) }
    else raise ArgumentError, kind
    end
  end

  def table(contexts, calls)
    contexts.to_h do |context, runner|
      cells = calls.to_h do |name, call|
        [name, runner.call(call)]
      rescue Exception => e # rubocop:disable Lint/RescueException
        [name, ["harness error #{e.class}: #{e.message}", nil]]
      end
      [context, cells]
    end
  end
end

if $PROGRAM_NAME == __FILE__
  require "json"
  puts JSON.pretty_generate(ReentrancyMatrix.run(ARGV.fetch(0, "unpacker")))
end
