# frozen_string_literal: true

require "zlib"

# Streaming with MessagePack::Unpacker: feed/feed_each over every chunking,
# resuming after EOFError, each over IOs, full_unpack, reset, the buffer view.
# docs/compatibility.md §5 (IO reading), §9.

RSpec.describe "MessagePack::Unpacker streaming" do
  STREAM_OBJECTS = [
    nil, true, false, 0, -1, 127, 128, -33, 255, 256, 65_536, 2**32, -2**31 - 1, -2**63, 2**64 - 1,
    1.5, -0.25, Float::INFINITY,
    "", "a" * 31, "b" * 32, "c" * 255, "d" * 256, "é" * 20, "\xFF\x00".b, ("\x01" * 300).b,
    [], [1, [2, [3, []]]], {}, { "k" => { "n" => [nil, "x"] }, 1 => "v", "e" => {} },
    MessagePack::ExtensionValue.new(1, "x"), MessagePack::ExtensionValue.new(-2, "y" * 20),
    MessagePack::ExtensionValue.new(3, ""), MessagePack::ExtensionValue.new(4, "z" * 16),
    [{ "deep" => [{ "deeper" => ["é", "\x00".b, 3.25] }] }],
  ].freeze

  let(:stream) { STREAM_OBJECTS.map { |o| MessagePack.pack(o) }.join.b }
  let(:new_unpacker) { -> { MessagePack::Unpacker.new(allow_unknown_ext: true) } }

  def collect_chunks(chunks)
    u = new_unpacker.call
    out = []
    chunks.each { |c| u.feed_each(c) { |o| out << o } }
    [out, u]
  end

  # What an entry of STREAM_OBJECTS decodes to: non-binary Strings come back UTF-8, ext
  # payloads binary.
  def decoded_form(obj)
    case obj
    when String then obj.encoding == Encoding::BINARY ? obj : obj.dup.force_encoding(Encoding::UTF_8)
    when Array then obj.map { |o| decoded_form(o) }
    when Hash then obj.to_h { |k, v| [decoded_form(k), decoded_form(v)] }
    when MessagePack::ExtensionValue then MessagePack::ExtensionValue.new(obj.type, obj.payload.b)
    else obj
    end
  end

  # == and StrictEquality (spec/support/strict_equality.rb; classes, String encodings at
  # every level, Float bits, map order).
  def expect_same_objects(actual)
    expect(actual.size).to eq(STREAM_OBJECTS.size)
    actual.zip(STREAM_OBJECTS).each do |a, e|
      expect(a).to eq(e)
      expect(a).to strictly_equal(decoded_form(e), frozen: false)
    end
  end

  describe "#feed_each over chunkings" do
    it "yields every object when fed in one piece" do
      out, = collect_chunks([stream])
      expect_same_objects(out)
    end

    it "yields the same objects for every two-chunk split point" do
      (0..stream.bytesize).each do |i|
        out, u = collect_chunks([stream.byteslice(0, i), stream.byteslice(i..)])
        expect(out).to eq(STREAM_OBJECTS), "split at #{i}"
        expect { u.read }.to raise_error(EOFError)
      end
    end

    it "yields the same objects when fed one byte at a time" do
      out, = collect_chunks(stream.bytes.map { |b| b.chr.b })
      expect_same_objects(out)
    end

    it "yields the same objects for seeded random chunkings" do
      rng = Random.new(20_240_611)
      30.times do
        chunks = []
        pos = 0
        while pos < stream.bytesize
          n = rng.rand(1..40)
          chunks << stream.byteslice(pos, n)
          pos += n
        end
        out, = collect_chunks(chunks)
        expect(out).to eq(STREAM_OBJECTS)
      end
    end

    it "yields the same objects with feed + each" do
      u = new_unpacker.call
      out = []
      stream.bytes.each_slice(3) do |bytes|
        u.feed(bytes.pack("C*"))
        u.each { |o| out << o }
      end
      expect(out).to eq(STREAM_OBJECTS)
    end

    it "handles a large string split in 655-byte chunks" do
      orig = "a" * 32 * 1024 * 4
      raw = MessagePack.pack(orig)
      u = MessagePack::Unpacker.new
      out = []
      (0...raw.bytesize).step(655) { |i| u.feed_each(raw.byteslice(i, 655)) { |o| out << o } }
      expect(out).to eq([orig])
    end

    it "accepts frozen source strings, short and long, in any encoding" do
      short = stream.dup.force_encoding(Encoding::UTF_8).freeze
      long = (stream * 50).force_encoding(Encoding::UTF_8).freeze
      expect(collect_chunks([short]).first).to eq(STREAM_OBJECTS)
      expect(collect_chunks([long]).first.size).to eq(STREAM_OBJECTS.size * 50)
    end

    it "returns an Enumerator without a block and feeds the data when it is iterated" do
      u = MessagePack::Unpacker.new
      enum = u.feed_each(bin("01 02"))
      expect(enum).to be_a(Enumerator)
      expect(enum.to_a).to eq([1, 2])
    end
  end

  describe "resuming after EOFError" do
    it "resumes every object at every split point, even inside headers and containers" do
      STREAM_OBJECTS.each do |obj|
        data = MessagePack.pack(obj)
        (1...data.bytesize).each do |i|
          u = new_unpacker.call
          u.feed(data.byteslice(0, i))
          expect { u.read }.to raise_error(EOFError)
          u.feed(data.byteslice(i..))
          expect(u.read).to eq(obj), "#{obj.inspect[0, 40]} split at #{i}"
        end
      end
    end

    it "resumes after several EOFErrors in a row" do
      u = MessagePack::Unpacker.new
      data = MessagePack.pack({ "a" => [1, 2, "three"] })
      data.each_byte.with_index do |b, i|
        u.feed(b.chr.b)
        if i < data.bytesize - 1
          expect { u.read }.to raise_error(EOFError)
        else
          expect(u.read).to eq({ "a" => [1, 2, "three"] })
        end
      end
    end

    it "resumes skip, read_array_header and read_map_header" do
      u = MessagePack::Unpacker.new
      u.feed(bin("92 01"))
      expect { u.skip }.to raise_error(EOFError)
      u.feed(bin("02 03"))
      expect(u.skip).to be_nil
      expect(u.read).to eq(3)
      u.feed(bin("dc 00"))
      expect { u.read_array_header }.to raise_error(EOFError)
      u.feed(bin("10"))
      expect(u.read_array_header).to eq(16)
    end
  end

  describe "#each" do
    it "stops quietly at incomplete data and keeps the partial object" do
      u = MessagePack::Unpacker.new
      u.feed(bin("01 92 02"))
      expect(u.each.to_a).to eq([1])
      u.feed(bin("03"))
      expect(u.each.to_a).to eq([[2, 3]])
    end

    it "returns nil with a block and an Enumerator without one" do
      u = MessagePack::Unpacker.new
      u.feed(bin("01"))
      expect(u.each { |_| nil }).to be_nil
      expect(u.each).to be_a(Enumerator)
    end

    it "propagates errors other than EOF" do
      u = MessagePack::Unpacker.new
      u.feed(bin("01 c1"))
      seen = []
      expect { u.each { |o| seen << o } }.to raise_error(MessagePack::MalformedFormatError)
      expect(seen).to eq([1])
    end

    it "reads an IO until EOF" do
      u = MessagePack::Unpacker.new(StringIO.new(stream), allow_unknown_ext: true)
      expect_same_objects(u.each.to_a)
    end

    it "silently drops a truncated object at the end of an IO" do
      u = MessagePack::Unpacker.new(StringIO.new(bin("01 02 92 03")))
      expect(u.each.to_a).to eq([1, 2])
    end

    it "passes symbolize_keys and freeze through IO reading" do
      io = StringIO.new(MessagePack.pack({ "a" => "b" }) * 2)
      out = MessagePack::Unpacker.new(io, symbolize_keys: true, freeze: true).each.to_a
      expect(out).to eq([{ a: "b" }, { a: "b" }])
      expect(out).to all(be_frozen)
    end
  end

  describe "IO sources" do
    it "reads from a pipe fed by another thread in small pieces" do
      r, w = IO.pipe
      writer = Thread.new do
        stream.bytes.each_slice(17) { |bytes| w.write(bytes.pack("C*")) }
        w.close
      end
      out = MessagePack::Unpacker.new(r, allow_unknown_ext: true).each.to_a
      writer.join
      r.close
      expect_same_objects(out)
    end

    it "reads from a Tempfile" do
      Tempfile.create("msgpack-unpacker") do |file|
        file.binmode
        file.write(stream)
        file.flush
        file.rewind
        expect_same_objects(MessagePack::Unpacker.new(file, allow_unknown_ext: true).each.to_a)
      end
    end

    it "reads from a Zlib::GzipReader" do
      gz = StringIO.new(+"")
      Zlib::GzipWriter.wrap(gz) { |w| w.write(stream) }
      reader = Zlib::GzipReader.new(StringIO.new(gz.string))
      expect_same_objects(MessagePack::Unpacker.new(reader, allow_unknown_ext: true).each.to_a)
    end

    it "reads many objects larger than one IO read" do
      objs = Array.new(40) { |i| "x" * (i * 1000) }
      io = StringIO.new(objs.map { |o| MessagePack.pack(o) }.join)
      expect(MessagePack::Unpacker.new(io).each.to_a).to eq(objs)
    end

    it "works with an object that only has read(n, buf)" do
      src = stream.dup
      reader = Object.new
      reader.define_singleton_method(:read) do |n, buf = nil|
        chunk = src.slice!(0, [n, 5].min)
        return nil if chunk.nil? || chunk.empty?

        buf ? buf.replace(chunk) : chunk
      end
      expect_same_objects(MessagePack::Unpacker.new(reader, allow_unknown_ext: true).each.to_a)
    end

    it "prefers readpartial over read and asks for io_buffer_size bytes" do
      calls = []
      src = bin("01 02")
      io = Object.new
      io.define_singleton_method(:read) { |*args| calls << [:read, args.first]; raise "read must not be called" }
      io.define_singleton_method(:readpartial) do |n, buf = nil|
        calls << [:readpartial, n]
        raise EOFError, "done" if src.empty?

        chunk = src.slice!(0, n)
        buf ? buf.replace(chunk) : chunk
      end
      expect(MessagePack::Unpacker.new(io).each.to_a).to eq([1, 2])
      expect(calls.first).to eq([:readpartial, 32_768])
      expect(calls.map(&:first).uniq).to eq([:readpartial])
    end

    it "raises io_buffer_size below 1024 to 1024" do
      sizes = []
      io = Object.new
      io.define_singleton_method(:readpartial) do |n, _buf = nil|
        sizes << n
        raise EOFError
      end
      expect(MessagePack::Unpacker.new(io, io_buffer_size: 1).each.to_a).to eq([])
      expect(MessagePack::Unpacker.new(io, io_buffer_size: 5000).each.to_a).to eq([])
      expect(sizes).to eq([1024, 5000])
    end

    it "raises EOFError 'IO reached end of file' when read returns nil or empty" do
      [nil, ""].each do |result|
        io = Object.new
        io.define_singleton_method(:read) { |*_args| result }
        u = MessagePack::Unpacker.new(io)
        expect { u.read }.to raise_error(EOFError, "IO reached end of file")
      end
    end

    it "lets the IO's own EOFError pass through" do
      u = MessagePack::Unpacker.new(StringIO.new(""))
      expect { u.read }.to raise_error(EOFError, "end of file reached")
    end

    it "propagates other IO errors from each" do
      io = Object.new
      io.define_singleton_method(:readpartial) { |*_args| raise IOError, "broken" }
      expect { MessagePack::Unpacker.new(io).each { |_| nil } }.to raise_error(IOError, "broken")
    end
  end

  describe "#feed" do
    it "returns self and accepts anything with to_str" do
      u = MessagePack::Unpacker.new
      src = Object.new
      def src.to_str = "\x07".b
      expect(u.feed(src)).to equal(u)
      expect(u.read).to eq(7)
    end

    it "raises TypeError for non-String data" do
      expect { MessagePack::Unpacker.new.feed(1) }.to raise_error(TypeError)
      expect { MessagePack::Unpacker.new.feed(nil) }.to raise_error(TypeError)
    end

    it "is aliased as feed_reference" do
      expect(MessagePack::Unpacker.new.feed_reference(bin("c3")).read).to be(true)
    end

    it "does not see later changes to the caller's string" do
      [+"\x01\x02", "x" * 1000].each do |src|
        src = src.b
        expected = MessagePack::Unpacker.new.feed(src.dup).each.to_a
        u = MessagePack::Unpacker.new
        u.feed(src)
        src.replace("\xC1" * src.bytesize)
        expect(u.each.to_a).to eq(expected)
      end
    end
  end

  describe "#full_unpack" do
    it "reads one object" do
      u = MessagePack::Unpacker.new
      u.feed(bin("92 01 02"))
      expect(u.full_unpack).to eq([1, 2])
    end

    it "raises MalformedFormatError for extra bytes" do
      u = MessagePack::Unpacker.new
      u.feed(bin("01 02 03"))
      expect { u.full_unpack }
        .to raise_error(MessagePack::MalformedFormatError, "2 extra bytes after the deserialized object")
    end

    it "raises EOFError for incomplete data" do
      expect { MessagePack::Unpacker.new.feed(bin("92 01")).full_unpack }.to raise_error(EOFError)
    end
  end

  describe "#reset" do
    it "returns nil and clears buffered data and parse state" do
      u = MessagePack::Unpacker.new
      u.feed(bin("92 01"))
      expect { u.read }.to raise_error(EOFError)
      expect(u.reset).to be_nil
      u.feed(bin("05"))
      expect(u.read).to eq(5)
    end

    it "keeps the options" do
      u = MessagePack::Unpacker.new(symbolize_keys: true, freeze: true)
      u.reset
      expect(u.feed(bin("81 a1 61 01")).read).to eq({ a: 1 })
      expect(u.symbolize_keys?).to be(true)
      expect(u.freeze?).to be(true)
    end
  end

  describe "#buffer" do
    it "returns the same Buffer; writing to it feeds the unpacker" do
      u = MessagePack::Unpacker.new
      b = u.buffer
      expect(b).to be_a(MessagePack::Buffer)
      expect(u.buffer).to equal(b)
      b << "\x05"
      expect(u.read).to eq(5)
      b.write(bin("a1 61"))
      expect(u.read).to eq("a")
    end

    it "shows the fed data" do
      u = MessagePack::Unpacker.new
      u.feed("frsyuki")
      expect(u.buffer.to_s).to eq("frsyuki")
      expect(u.buffer.size).to eq(7)
    end

    it "keeps an @owner ivar on the buffer view", :since_1_6 do
      u = MessagePack::Unpacker.new
      expect(u.buffer.instance_variable_get(:@owner)).to equal(u)
    end

    it "exposes the IO" do
      io = StringIO.new
      expect(MessagePack::Unpacker.new(io).buffer.io).to equal(io)
    end
  end
end
