# frozen_string_literal: true

# MessagePack::Packer: constructor, write API, buffer/state, IO output,
# ext registration on a bare packer. docs/compatibility.md §6.

RSpec.describe MessagePack::Packer do
  let(:packer) { MessagePack::Packer.new }

  describe ".new" do
    it "accepts (), (nil), (hash), (io), (io, hash), (nil, hash)" do
      io = StringIO.new
      [[], [nil], [{}], [{ compatibility_mode: true }], [io], [io, {}], [nil, {}]].each do |args|
        expect(MessagePack::Packer.new(*args)).to be_a(MessagePack::Packer)
      end
    end

    it "accepts (io, nil)", :since_1_5 do
      expect(MessagePack::Packer.new(StringIO.new, nil)).to be_a(MessagePack::Packer)
    end

    it "takes a lone Hash as options" do
      expect(MessagePack::Packer.new(compatibility_mode: true).compatibility_mode?).to be(true)
      expect(MessagePack::Packer.new({ compatibility_mode: true }).buffer.io).to be_nil
    end

    it "raises TypeError for a non-Hash second argument", :since_1_5, :c_quirk do
      expect { MessagePack::Packer.new(StringIO.new, 1) }
        .to raise_error(TypeError, "wrong argument type Integer (expected Hash)")
    end

    it "raises ArgumentError for three or more arguments" do
      expect { MessagePack::Packer.new(nil, {}, 1) }
        .to raise_error(ArgumentError, "wrong number of arguments (3 for 0..2)")
    end

    it "ignores unknown option keys" do
      expect(MessagePack::Packer.new(bogus: 1).write(1).to_s).to eq(bin("01"))
    end

    it "accepts the buffer options" do
      pk = MessagePack::Packer.new(io_buffer_size: 1, read_reference_threshold: 1, write_reference_threshold: 1)
      expect(pk.write("x" * 300).to_s).to eq(bin("da 01 2c") + "x" * 300)
    end

    it "reports compatibility_mode? as true/false" do
      expect(MessagePack::Packer.new.compatibility_mode?).to be(false)
      expect(MessagePack::Packer.new(compatibility_mode: true).compatibility_mode?).to be(true)
    end
  end

  describe "write API" do
    it "returns self from every write method so calls chain" do
      out = packer.write_nil.write_true.write_false.write_int(5).write_float(1.0).write_float32(1.0)
                  .write_symbol(:a).write_string("b").write_bin("c").write_array([]).write_hash({})
                  .write_bin_header(1).write_array_header(0).write_map_header(0)
                  .write_extension(MessagePack::ExtensionValue.new(1, "x")).write_ext(2, "y")
                  .write(3).pack(4)
      expect(out).to equal(packer)
      expect(packer.to_s).to eq(bin("c0 c3 c2 05 cb 3f f0 00 00 00 00 00 00 ca 3f 80 00 00 a1 61 a1 62 c4 01 63 90 80 " \
                                    "c4 01 90 80 d4 01 78 d4 02 79 03 04"))
    end

    it "has pack as an alias of write" do
      expect(packer.pack([1]).to_s).to eq(bin("91 01"))
    end

    it "type-checks write_int" do
      expect { packer.write_int(1.0) }.to raise_error(TypeError)
      expect { packer.write_int("1") }.to raise_error(TypeError)
      expect { packer.write_int(nil) }.to raise_error(TypeError)
    end

    it "type-checks write_float (Numeric only)" do
      expect { packer.write_float("1.0") }.to raise_error(TypeError)
      expect { packer.write_float(nil) }.to raise_error(TypeError)
    end

    it "raises ArgumentError 'Expected numeric' for a non-Numeric write_float32" do
      expect { packer.write_float32("abc") }.to raise_error(ArgumentError, "Expected numeric")
      expect { packer.write_float32(nil) }.to raise_error(ArgumentError, "Expected numeric")
    end

    it "type-checks write_string, write_bin, write_symbol, write_array, write_hash" do
      expect { packer.write_string(:a) }.to raise_error(TypeError)
      expect { packer.write_bin(1) }.to raise_error(TypeError)
      expect { packer.write_symbol("a") }.to raise_error(TypeError)
      expect { packer.write_array({}) }.to raise_error(TypeError)
      expect { packer.write_hash([]) }.to raise_error(TypeError)
      expect(packer.to_s).to eq("".b)
    end

    it "writes a binary String as bin with write_string" do
      expect(packer.write_string("ab".b).write_string("ab").to_s).to eq(bin("c4 02 61 62 a2 61 62"))
    end

    it "writes containers without ext lookup but elements through write", :since_1_4_3 do
      sub = Class.new(Array)
      packer.register_type(1, sub) { |_a| "E" }
      packer.write_array(sub[sub[1]])
      expect(packer.to_s).to eq(bin("91 d4 01 45"))
      hpk = MessagePack::Packer.new
      hsub = Class.new(Hash)
      hpk.register_type(2, hsub) { |_h| "H" }
      hpk.write_hash(hsub["k" => hsub[]])
      expect(hpk.to_s).to eq(bin("81 a1 6b d4 02 48"))
    end

    describe "#write_extension" do
      it "writes any Struct with (type, payload)" do
        point = Struct.new(:t, :p)
        expect(packer.write_extension(point.new(3, "ab")).to_s).to eq(bin("d5 03 61 62"))
      end

      it "raises TypeError for a non-Struct" do
        expect { packer.write_extension([1, "a"]) }.to raise_error(TypeError)
      end

      it "raises RangeError for a type outside -128..127" do
        expect { packer.write_extension(MessagePack::ExtensionValue.new(128, "a")) }.to raise_error(RangeError)
        expect { packer.write_extension(MessagePack::ExtensionValue.new(-129, "a")) }.to raise_error(RangeError)
      end
    end

    describe "#write_ext" do
      it "writes type and payload" do
        expect(packer.write_ext(-1, "abcd").to_s).to eq(bin("d6 ff 61 62 63 64"))
        expect(MessagePack::Packer.new.write_ext(127, "").to_s).to eq(bin("c7 00 7f"))
      end

      it "raises RangeError with the C message for a type outside -128..127" do
        expect { packer.write_ext(128, "a") }
          .to raise_error(RangeError, either_quote("integer 128 too big to convert to `signed char'"))
        expect { packer.write_ext(-129, "a") }
          .to raise_error(RangeError, either_quote("integer -129 too big to convert to `signed char'"))
      end

      it "raises TypeError for a non-String payload" do
        expect { packer.write_ext(1, 1) }.to raise_error(TypeError)
      end
    end

    describe "headers" do
      it "writes array and map headers in every size class" do
        { 0 => %w[90 80], 15 => %w[9f 8f], 16 => ["dc 00 10", "de 00 10"], 65_535 => ["dc ff ff", "de ff ff"],
          65_536 => ["dd 00 01 00 00", "df 00 01 00 00"], 2**32 - 1 => ["dd ff ff ff ff", "df ff ff ff ff"] }
          .each do |n, (ah, mh)|
          expect(MessagePack::Packer.new.write_array_header(n).to_s).to eq(bin(ah))
          expect(MessagePack::Packer.new.write_map_header(n).to_s).to eq(bin(mh))
        end
      end

      it "writes bin headers in every size class" do
        expect(MessagePack::Packer.new.write_bin_header(0).to_s).to eq(bin("c4 00"))
        expect(MessagePack::Packer.new.write_bin_header(255).to_s).to eq(bin("c4 ff"))
        expect(MessagePack::Packer.new.write_bin_header(2**32 - 1).to_s).to eq(bin("c6 ff ff ff ff"))
      end

      it "raises RangeError for counts above 2**32-1" do
        expect { packer.write_array_header(2**32) }.to raise_error(RangeError)
        expect { packer.write_map_header(2**32) }.to raise_error(RangeError)
        expect { packer.write_bin_header(2**32) }.to raise_error(RangeError)
      end

      it "wraps negative counts to uint32 (NUM2UINT quirk)", :c_quirk do
        expect(MessagePack::Packer.new.write_array_header(-1).to_s).to eq(bin("dd ff ff ff ff"))
        expect(MessagePack::Packer.new.write_map_header(-1).to_s).to eq(bin("df ff ff ff ff"))
        expect(MessagePack::Packer.new.write_bin_header(-1).to_s).to eq(bin("c6 ff ff ff ff"))
        expect(MessagePack::Packer.new.write_array_header(-65_536).to_s).to eq(bin("dd ff ff 00 00"))
      end
    end
  end

  describe "buffer and state" do
    it "reports size and empty?" do
      expect(packer.size).to eq(0)
      expect(packer.empty?).to be(true)
      packer.write("abc")
      expect(packer.size).to eq(4)
      expect(packer.empty?).to be(false)
    end

    it "returns copies from to_s/to_str without consuming" do
      packer.write([1, 2])
      s = packer.to_s
      expect(s).to eq(bin("92 01 02"))
      expect(s.encoding).to eq(Encoding::BINARY)
      s << "x"
      expect(packer.to_str).to eq(bin("92 01 02"))
      expect(packer.size).to eq(3)
    end

    it "returns the chunks with to_a" do
      expect(packer.write(1).to_a.join).to eq(bin("01"))
      expect(packer.to_a).to all(be_a(String))
    end

    it "resets with reset (alias clear), returning nil", :since_1_4_5 do
      packer.write(1)
      expect(packer.reset).to be_nil
      expect(packer.empty?).to be(true)
      packer.write(2)
      expect(packer.clear).to be_nil
      expect(packer.to_s).to eq("".b)
    end

    it "writes its buffer to an IO with write_to and consumes it" do
      io = StringIO.new(+"")
      packer.write("abc")
      expect(packer.write_to(io)).to eq(4)
      expect(io.string.b).to eq(bin("a3 61 62 63"))
      expect(packer.empty?).to be(true)
    end

    it "returns the packed String from full_pack and clears the buffer" do
      packer.write(1).write(2)
      out = packer.full_pack
      expect(out).to eq(bin("01 02"))
      expect(out.encoding).to eq(Encoding::BINARY)
      expect(packer.empty?).to be(true)
      expect(packer.full_pack).to eq("".b)
    end

    it "returns the same Buffer view from #buffer every time" do
      b = packer.buffer
      expect(b).to be_a(MessagePack::Buffer)
      expect(packer.buffer).to equal(b)
      b << "frsyuki"
      expect(packer.to_s).to eq("frsyuki")
      packer.write(1)
      expect(b.to_s).to eq("frsyuki\x01".b)
    end

    it "keeps an @owner ivar on the buffer view", :since_1_6 do
      expect(packer.buffer.instance_variable_get(:@owner)).to equal(packer)
    end

    it "does not support dup or clone", :since_1_6 do
      expect { packer.dup }.to raise_error(NoMethodError)
      expect { packer.clone }.to raise_error(NoMethodError)
    end
  end

  describe "with an IO" do
    it "flushes lazily: data reaches the IO on flush" do
      io = StringIO.new(+"")
      pk = MessagePack::Packer.new(io)
      pk.write(nil)
      expect(io.string).to eq("")
      expect(pk.flush).to equal(pk)
      expect(io.string.b).to eq(bin("c0"))
      expect(pk.to_s).to eq("".b)
    end

    it "returns nil from full_pack after flushing and clearing" do
      io = StringIO.new(+"")
      pk = MessagePack::Packer.new(io)
      pk.write([1, 2])
      expect(pk.full_pack).to be_nil
      expect(io.string.b).to eq(bin("92 01 02"))
      expect(pk.empty?).to be(true)
    end

    it "flushes when the buffer grows" do
      io = StringIO.new(+"")
      pk = MessagePack::Packer.new(io)
      pk.write("x" * 1_000_000)
      expect(io.string.bytesize + pk.size).to eq(1_000_005)
      pk.flush
      expect(io.string.b).to eq(bin("db 00 0f 42 40") + "x" * 1_000_000)
    end

    it "writes to a pipe" do
      r, w = IO.pipe
      pk = MessagePack::Packer.new(w)
      pk.write({ "a" => 1 }).flush
      w.close
      expect(r.read.b).to eq(bin("81 a1 61 01"))
      r.close
    end

    it "writes to a Tempfile" do
      Tempfile.create("msgpack-packer") do |file|
        file.binmode
        pk = MessagePack::Packer.new(file)
        100.times { |i| pk.write(i) }
        pk.flush
        file.rewind
        expect(MessagePack::Unpacker.new(file).each.to_a).to eq((0...100).to_a)
      end
    end

    it "uses #write when available, otherwise #<<" do
      writes = []
      writer = Object.new
      writer.define_singleton_method(:write) { |s| writes << [:write, s.dup]; s.bytesize }
      MessagePack::Packer.new(writer).write(1).flush
      appender = Object.new
      appender.define_singleton_method(:<<) { |s| writes << [:<<, s.dup]; self }
      MessagePack::Packer.new(appender).write(2).flush
      expect(writes).to eq([[:write, bin("01")], [:<<, bin("02")]])
    end

    it "exposes the IO through buffer.io" do
      io = StringIO.new
      expect(MessagePack::Packer.new(io).buffer.io).to equal(io)
      expect(MessagePack::Packer.new.buffer.io).to be_nil
    end
  end

  describe "#register_type" do
    let(:klass) { Struct.new(:v) }

    it "registers a block" do
      packer.register_type(5, klass) { |o| o.v.to_s }
      expect(packer.write(klass.new(12)).to_s).to eq(bin("d5 05 31 32"))
    end

    it "registers a method name" do
      klass.define_method(:to_ext) { "e#{v}" }
      packer.register_type(6, klass, :to_ext)
      expect(packer.write(klass.new(1)).to_s).to eq(bin("d5 06 65 31"))
    end

    it "accepts a lambda as method_name" do
      packer.register_type(7, klass, ->(o) { o.v })
      expect(packer.write(klass.new("zz")).to_s).to eq(bin("d5 07 7a 7a"))
    end

    it "raises ArgumentError for a non-Module class argument", :since_1_5 do
      expect { packer.register_type(1, 1) { "" } }.to raise_error(ArgumentError, "expected Module/Class got: 1")
    end

    it "raises NoMethodError for the README two-argument form", :since_1_5, :c_quirk do
      expect { packer.register_type(1, klass) }.to raise_error(NoMethodError, /to_proc/)
    end

    it "uses a Symbol registration for write(:sym)" do
      packer.register_type(0, Symbol, :to_msgpack_ext)
      expect(packer.write(:symbol).to_s).to eq(bin("c7 06 00") + "symbol")
    end

    it "propagates exceptions raised by the proc unchanged" do
      err = Class.new(StandardError)
      packer.register_type(1, klass) { |_o| raise err, "boom" }
      expect { packer.write(klass.new(1)) }.to raise_error(err, "boom")
    end

    it "raises TypeError when the proc does not return a String" do
      packer.register_type(1, klass) { |_o| 42 }
      expect { packer.write(klass.new(1)) }.to raise_error(TypeError)
    end

    it "raises FrozenError on a frozen packer", :since_1_5 do
      packer.freeze
      expect { packer.register_type(1, klass) { "" } }
        .to raise_error(FrozenError, "can't modify frozen MessagePack::Packer")
    end

    it "has a public register_type_internal", :since_1_5, :c_quirk do
      expect(MessagePack::Packer.public_method_defined?(:register_type_internal)).to be(true)
      packer.register_type_internal(9, klass, ->(o) { o.v })
      expect(packer.write(klass.new("a")).to_s).to eq(bin("d4 09 61"))
    end

    it "matches subclasses, included modules and extended objects" do
      mod = Module.new
      packer.register_type(1, mod) { |_o| "M" }
      packer.register_type(2, klass) { |_o| "K" }
      incl = Class.new { include mod }
      expect(MessagePack::Packer.new.tap { |p| p.register_type(1, mod) { |_o| "M" } }.write(incl.new).to_s).to eq(bin("d4 01 4d"))
      expect(packer.write(Class.new(klass).new(1)).to_s).to eq(bin("d4 02 4b"))
      expect(MessagePack::Packer.new.tap { |p| p.register_type(1, mod) { |_o| "M" } }.write(Object.new.extend(mod)).to_s)
        .to eq(bin("d4 01 4d"))
    end

    it "prefers the exact class over an ancestor, in any registration order" do
      child = Class.new(klass)
      packer.register_type(1, klass) { |_o| "P" }
      packer.register_type(2, child) { |_o| "C" }
      expect(packer.write(child.new(1)).write(klass.new(1)).to_s).to eq(bin("d4 02 43 d4 01 50"))
    end

    it "clears the ancestor lookup cache on each registration" do
      child = Class.new(klass)
      packer.register_type(1, klass) { |_o| "P" }
      expect(packer.write(child.new(1)).to_s).to eq(bin("d4 01 50"))
      packer.register_type(2, child) { |_o| "C" }
      expect(packer.write(child.new(1)).to_s).to eq(bin("d4 01 50 d4 02 43"))
    end

    it "accepts a block that ignores its argument (a plain proc, not a lambda)", :since_1_5 do
      packer.register_type(1, klass) { "z" }
      expect(packer.write(klass.new(0)).to_s).to eq(bin("d4 01 7a"))
    end

    it "makes the last registration for a class win" do
      packer.register_type(1, klass) { |_o| "a" }
      packer.register_type(2, klass) { |_o| "b" }
      expect(packer.write(klass.new(0)).to_s).to eq(bin("d4 02 62"))
    end
  end

  describe "#registered_types / #type_registered?" do
    let(:a) { Class.new }
    let(:b) { Class.new }

    it "lists registrations sorted by type" do
      packer.register_type(0x31, b) { "" }
      packer.register_type(0x30, a) { "" }
      list = packer.registered_types
      expect(list.map { |e| e.keys.sort }).to eq([%i[class packer type]] * 2)
      expect(list.map { |e| [e[:type], e[:class]] }).to eq([[0x30, a], [0x31, b]])
    end

    it "stores Procs as packers", :since_1_5 do
      packer.register_type(0x30, a, :to_s)
      expect(packer.registered_types.first[:packer]).to be_a(Proc)
    end

    it "matches Classes with <= and Integers by id" do
      packer.register_type(0x30, a) { "" }
      expect(packer.type_registered?(0x30)).to be(true)
      expect(packer.type_registered?(0x31)).to be(false)
      expect(packer.type_registered?(a)).to be(true)
      expect(packer.type_registered?(Class.new(a))).to be(true)
      expect(packer.type_registered?(b)).to be(false)
    end

    it "raises ArgumentError for anything else, including a plain Module" do
      expect { packer.type_registered?("a") }.to raise_error(ArgumentError, "class or type id")
      expect { packer.type_registered?(Module.new) }.to raise_error(ArgumentError, "class or type id")
    end
  end

  describe "core objects" do
    it "calls a user-defined to_msgpack(packer) with the packer itself" do
      received = nil
      obj = Object.new
      obj.define_singleton_method(:to_msgpack) do |pk|
        received = pk
        pk.write_array_header(2).write(1).write(2)
      end
      expect(packer.write(obj).to_s).to eq(bin("92 01 02"))
      expect(received).to equal(packer)
    end

    it "raises NoMethodError for objects without to_msgpack" do
      expect { packer.write(Object.new) }.to raise_error(NoMethodError, /to_msgpack/)
    end
  end
end
