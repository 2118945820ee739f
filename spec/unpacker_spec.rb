# frozen_string_literal: true

# MessagePack::Unpacker: constructor, options, reading methods, errors,
# ext registration. docs/compatibility.md §9, §10. Streaming/IO: unpacker_stream_spec.rb.

RSpec.describe MessagePack::Unpacker do
  let(:unpacker) { MessagePack::Unpacker.new }

  describe ".new" do
    it "accepts (), (nil), (hash), (io), (io, hash)" do
      io = StringIO.new
      [[], [nil], [{}], [{ symbolize_keys: true }], [io], [io, {}], [nil, {}]].each do |args|
        expect(MessagePack::Unpacker.new(*args)).to be_a(MessagePack::Unpacker)
      end
    end

    it "accepts (io, nil)", :since_1_5 do
      expect(MessagePack::Unpacker.new(StringIO.new, nil)).to be_a(MessagePack::Unpacker)
    end

    it "checks the buffer options in msgpack-ruby's order: read_reference_threshold, " \
       "write_reference_threshold, io_buffer_size" do
      expect { MessagePack::Unpacker.new(io_buffer_size: :size, read_reference_threshold: "x") }
        .to raise_error(TypeError, /string/i)
      expect { MessagePack::Unpacker.new(read_reference_threshold: :rrt, write_reference_threshold: "x") }
        .to raise_error(TypeError, /symbol/i)
      expect { MessagePack::Packer.new(io_buffer_size: :size, write_reference_threshold: "x") }
        .to raise_error(TypeError, /string/i)
    end

    it "applies a type registered while an object waits for more bytes to the rest of it" do
      u = MessagePack::Unpacker.new
      u.register_type(1) { |_| u.register_type(2) { |_| :two }; :one }
      u.feed("\x92\xd4\x01\x00".b.freeze)
      u.feed(("\xd4\x02\x00".b + " " * 4000).freeze)
      expect(u.read).to eq([:one, :two])
    end

    it "raises ArgumentError for a non-Hash second argument" do
      expect { MessagePack::Unpacker.new(StringIO.new, 1) }
        .to raise_error(ArgumentError, "expected Hash but found Integer.")
    end

    it "raises ArgumentError for three or more arguments" do
      expect { MessagePack::Unpacker.new(nil, {}, 1) }
        .to raise_error(ArgumentError, "wrong number of arguments (3 for 0..2)")
    end

    it "defaults every option to false" do
      expect(unpacker.symbolize_keys?).to be(false)
      expect(unpacker.freeze?).to be(false)
      expect(unpacker.allow_unknown_ext?).to be(false)
    end

    it "sets options by truthiness and ignores unknown keys" do
      u = MessagePack::Unpacker.new(symbolize_keys: 1, freeze: "yes", allow_unknown_ext: true, bogus: 1)
      expect([u.symbolize_keys?, u.freeze?, u.allow_unknown_ext?]).to eq([true, true, true])
      u = MessagePack::Unpacker.new(symbolize_keys: nil, freeze: false)
      expect([u.symbolize_keys?, u.freeze?]).to eq([false, false])
    end

    it "has no key_cache? predicate" do
      expect(unpacker).not_to respond_to(:key_cache?)
    end

    it "accepts the key_cache option (1.8.0; older versions ignore it)" do
      u = MessagePack::Unpacker.new(key_cache: true)
      expect(u.feed(bin("81 a1 61 01")).read).to eq({ "a" => 1 })
    end

    it "does not support dup or clone", :since_1_6 do
      expect { unpacker.dup }.to raise_error(NoMethodError)
      expect { unpacker.clone }.to raise_error(NoMethodError)
    end
  end

  describe "#read / #unpack" do
    it "reads consecutive objects" do
      unpacker.feed(bin("01 a1 61 92 c0 c3"))
      expect(unpacker.read).to eq(1)
      expect(unpacker.unpack).to eq("a")
      expect(unpacker.read).to eq([nil, true])
    end

    it "raises EOFError 'end of buffer reached' when empty or incomplete" do
      expect { unpacker.read }.to raise_error(EOFError, "end of buffer reached")
      unpacker.feed(bin("92 01"))
      expect { unpacker.read }.to raise_error(EOFError, "end of buffer reached")
    end

    it "is not strict about trailing bytes" do
      unpacker.feed(bin("01 02"))
      expect(unpacker.read).to eq(1)
    end

    it "raises MalformedFormatError 'invalid byte' for C1 and reads the next object afterwards" do
      unpacker.feed(bin("c1 05"))
      expect { unpacker.read }.to raise_error(MessagePack::MalformedFormatError, "invalid byte")
      expect(unpacker.read).to eq(5)
    end

    it "is usable after reset following a MalformedFormatError" do
      unpacker.feed(bin("92 01 c1"))
      expect { unpacker.read }.to raise_error(MessagePack::MalformedFormatError)
      unpacker.reset
      unpacker.feed(bin("91 07"))
      expect(unpacker.read).to eq([7])
    end

    it "allows feeding an empty String (not treated as end of data)" do
      expect(unpacker.feed("")).to equal(unpacker)
      expect { unpacker.read }.to raise_error(EOFError)
      unpacker.feed(bin("91"))
      unpacker.feed("")
      unpacker.feed(bin("02"))
      expect(unpacker.read).to eq([2])
    end

    it "raises EOFError for a huge declared str/bin/ext length with no data" do
      ["db ff ff ff ff", "c6 ff ff ff ff", "c9 ff ff ff ff 01"].each do |h|
        u = MessagePack::Unpacker.new
        u.feed(bin(h))
        expect { u.read }.to raise_error(EOFError), h
      end
    end

    it "raises EOFError (not NoMemoryError) for a huge declared container count with no data", :since_1_7 do
      ["dd ff ff ff ff", "df ff ff ff ff", "91 dd 7f ff ff ff"].each do |h|
        u = MessagePack::Unpacker.new
        u.feed(bin(h))
        expect { u.read }.to raise_error(EOFError), h
      end
    end
  end

  describe "nesting depth" do
    def nested_arrays(depth)
      bin("91" * depth + "c0")
    end

    it "reads 128 levels of nested containers" do
      unpacker.feed(nested_arrays(128))
      obj = unpacker.read
      depth = 0
      while obj.is_a?(Array)
        obj = obj.first
        depth += 1
      end
      expect(depth).to eq(128)
    end

    it "raises StackError 'stack level too deep' at 129 levels (read and skip)" do
      unpacker.feed(nested_arrays(129))
      expect { unpacker.read }.to raise_error(MessagePack::StackError, "stack level too deep")
      u = MessagePack::Unpacker.new
      u.feed(nested_arrays(129))
      expect { u.skip }.to raise_error(MessagePack::StackError)
    end

    it "counts maps as well as arrays" do
      unpacker.feed(bin("81 01" * 129 + "c0"))
      expect { unpacker.read }.to raise_error(MessagePack::StackError)
    end

    it "does not count empty containers" do
      unpacker.feed(bin("91" * 128 + "90"))
      expect(unpacker.read.flatten).to eq([])
      u = MessagePack::Unpacker.new
      u.feed(bin("91" * 127 + "92 90 80"))
      expect { u.read }.not_to raise_error
    end
  end

  describe "#skip / #skip_nil" do
    it "skips one object and returns nil" do
      unpacker.feed(bin("01 92 03 04 05"))
      expect(unpacker.read).to eq(1)
      expect(unpacker.skip).to be_nil
      expect(unpacker.read).to eq(5)
    end

    it "raises EOFError and MalformedFormatError like read" do
      expect { unpacker.skip }.to raise_error(EOFError)
      unpacker.feed(bin("c1"))
      expect { unpacker.skip }.to raise_error(MessagePack::MalformedFormatError)
    end

    it "skip_nil only peeks: true for C0, which a later read still returns", :c_quirk do
      unpacker.feed(bin("c0 01"))
      expect(unpacker.skip_nil).to be(true)
      expect(unpacker.read).to be_nil
      expect(unpacker.skip_nil).to be(false)
      expect(unpacker.read).to eq(1)
    end

    it "skip_nil raises EOFError with no data" do
      expect { unpacker.skip_nil }.to raise_error(EOFError)
    end
  end

  describe "#read_array_header / #read_map_header" do
    it "returns the counts for every header size" do
      unpacker.feed(bin("90 9f dc 00 10 dd 00 01 00 00 80 8f de 00 10 df 00 01 00 00"))
      expect(4.times.map { unpacker.read_array_header }).to eq([0, 15, 16, 65_536])
      expect(4.times.map { unpacker.read_map_header }).to eq([0, 15, 16, 65_536])
    end

    it "lets the elements be read one by one" do
      unpacker.feed(MessagePack.pack({ "k" => "v", "e" => [1] }))
      expect(unpacker.read_map_header).to eq(2)
      expect([unpacker.read, unpacker.read, unpacker.read, unpacker.read]).to eq(["k", "v", "e", [1]])
    end

    it "raises UnexpectedTypeError 'unexpected type' on other types" do
      unpacker.feed(bin("81 01 01"))
      expect { unpacker.read_array_header }.to raise_error(MessagePack::UnexpectedTypeError, "unexpected type")
      u = MessagePack::Unpacker.new
      u.feed(bin("91 01"))
      expect { u.read_map_header }.to raise_error(MessagePack::UnexpectedTypeError, "unexpected type")
      expect { u.read_map_header }.to raise_error(MessagePack::TypeError)
    end

    it "raises EOFError on short data" do
      expect { unpacker.read_array_header }.to raise_error(EOFError)
      unpacker.feed(bin("dc 00"))
      expect { unpacker.read_array_header }.to raise_error(EOFError)
      expect { MessagePack::Unpacker.new.feed(bin("de")).read_map_header }.to raise_error(EOFError)
    end
  end

  describe "symbolize_keys" do
    let(:unpacker) { MessagePack::Unpacker.new(symbolize_keys: true) }

    it "turns str keys into Symbols at every level" do
      unpacker.feed(MessagePack.pack({ "a" => { "b" => [{ "c" => 1 }] } }))
      expect(unpacker.read).to eq({ a: { b: [{ c: 1 }] } })
    end

    it "makes UTF-8 symbols from non-ASCII str keys" do
      out = unpacker.feed(MessagePack.pack({ "fée" => 1 })).read
      expect(out.keys.first).to equal(:"fée")
      expect(out.keys.first.encoding).to eq(Encoding::UTF_8)
    end

    it "makes binary symbols from non-ASCII bin keys" do
      key = unpacker.feed(bin("81 c4 01 ff 01")).read.keys.first
      expect(key).to be_a(Symbol)
      expect(key.to_s.encoding).to eq(Encoding::BINARY)
    end

    it "leaves non-String keys alone" do
      unpacker.feed(bin("83 01 02 c0 03 91 01 04"))
      expect(unpacker.read).to eq({ 1 => 2, nil => 3, [1] => 4 })
    end

    it "does not symbolize values" do
      expect(unpacker.feed(bin("81 a1 61 a1 62")).read).to eq({ a: "b" })
    end

    it "raises EncodingError for invalid UTF-8 in a str key" do
      unpacker.feed(bin("81 a1 ff 01"))
      expect { unpacker.read }.to raise_error(EncodingError)
    end

    it "works with MessagePack.unpack and Factory#load" do
      data = MessagePack.pack({ "x" => 1 })
      expect(MessagePack.unpack(data, symbolize_keys: true)).to eq({ x: 1 })
      expect(MessagePack::Factory.new.load(data, symbolize_keys: true)).to eq({ x: 1 })
    end

    it "works with key_cache" do
      u = MessagePack::Unpacker.new(symbolize_keys: true, key_cache: true)
      u.feed(MessagePack.pack([{ "id" => 1, "name" => "a" }, { "id" => 2, "name" => "b" }]))
      expect(u.read).to eq([{ id: 1, name: "a" }, { id: 2, name: "b" }])
    end
  end

  describe "key_cache (a transparent cache: results equal the uncached ones)" do
    it "returns frozen, identical str keys across objects" do
      u = MessagePack::Unpacker.new(key_cache: true)
      records = Array.new(100) { |i| { "id" => i, "k#{i % 70}" => i } }
      u.feed(MessagePack.pack(records))
      out = u.read
      expect(out).to eq(records)
      expect(out[0].keys[0]).to be_frozen
      expect(out[0].keys[0]).to equal(out[99].keys[0])
    end

    it "does not change results across chunk boundaries" do
      data = MessagePack.pack(Array.new(200) { |i| { "key#{i % 80}" => i } })
      u = MessagePack::Unpacker.new(key_cache: true)
      out = []
      data.each_char.each_slice(7) { |cs| u.feed_each(cs.join) { |o| out << o } }
      expect(out).to eq([MessagePack.unpack(data)])
    end
  end

  describe "freeze" do
    let(:unpacker) { MessagePack::Unpacker.new(freeze: true) }

    it "freezes every object" do
      unpacker.feed(MessagePack.pack({ "a" => ["b", { "c" => "d".b }], "e" => 1.5 }))
      obj = unpacker.read
      expect(obj).to be_frozen
      expect(obj["a"]).to be_frozen
      expect(obj["a"][0]).to be_frozen
      expect(obj["a"][1]).to be_frozen
      expect(obj["a"][1]["c"]).to be_frozen
    end

    it "interns strings" do
      obj = unpacker.feed(MessagePack.pack(%w[hello hello])).read
      expect(obj[0]).to equal(obj[1])
      expect(obj[0]).to equal(-"hello")
    end

    it "returns the -\"\" singleton for empty strings", :since_1_5 do
      expect(unpacker.feed(bin("a0")).read).to equal(-"")
    end

    it "freezes ext results" do
      u = MessagePack::Unpacker.new(freeze: true, allow_unknown_ext: true)
      u.register_type(1) { |data| [data] }
      expect(u.feed(bin("d4 01 61")).read).to be_frozen
      expect(u.feed(bin("d4 02 61")).read).to be_frozen
    end

    it "does not freeze objects without the option" do
      obj = MessagePack::Unpacker.new.feed(MessagePack.pack({ "a" => ["b"] })).read
      expect(obj).not_to be_frozen
      expect(obj["a"]).not_to be_frozen
      expect(obj["a"][0]).not_to be_frozen
    end
  end

  describe "ext types" do
    it "raises UnknownExtTypeError 'unexpected extension type' by default" do
      unpacker.feed(bin("d4 05 00"))
      expect { unpacker.read }.to raise_error(MessagePack::UnknownExtTypeError, "unexpected extension type")
    end

    it "returns ExtensionValue with a binary payload under allow_unknown_ext" do
      u = MessagePack::Unpacker.new(allow_unknown_ext: true)
      out = u.feed(bin("c7 00 05 d5 fb 61 62")).read
      expect(out).to eq(MessagePack::ExtensionValue.new(5, "".b))
      expect(out.payload.encoding).to eq(Encoding::BINARY)
      expect(u.read).to eq(MessagePack::ExtensionValue.new(-5, "ab".b))
    end

    it "calls the registered proc with a binary payload ('' for length 0)" do
      seen = []
      unpacker.register_type(1) { |data| seen << data; data.size }
      unpacker.feed(bin("c7 00 01 d5 01 61 62"))
      expect([unpacker.read, unpacker.read]).to eq([0, 2])
      expect(seen).to eq(["".b, "ab".b])
      expect(seen.map(&:encoding).uniq).to eq([Encoding::BINARY])
    end

    it "propagates exceptions raised by the proc unchanged and stays usable" do
      err = Class.new(StandardError)
      unpacker.register_type(1) { |_data| raise err, "nope" }
      unpacker.feed(bin("92 d4 01 00"))
      expect { unpacker.read }.to raise_error(err, "nope")
      unpacker.reset
      expect(unpacker.feed(bin("01")).read).to eq(1)
    end
  end

  describe "#register_type" do
    let(:klass) do
      Class.new do
        def self.from_msgpack_ext(data)
          "got #{data}"
        end
      end
    end

    it "registers klass.method(name) with three arguments" do
      unpacker.register_type(0x10, klass, :from_msgpack_ext)
      expect(unpacker.feed(bin("d4 10 61")).read).to eq("got a")
    end

    it "registers a block and stores klass as given (usually nil)" do
      unpacker.register_type(0x11) { |d| d.upcase }
      expect(unpacker.feed(bin("d4 11 61")).read).to eq("A")
      expect(unpacker.registered_types).to eq([{ type: 0x11, class: nil, unpacker: unpacker.registered_types[0][:unpacker] }])
    end

    it "raises ArgumentError for other argument combinations", :since_1_5 do
      expect { unpacker.register_type(1) }
        .to raise_error(ArgumentError, "register_type takes either 3 arguments or a block")
      expect { unpacker.register_type(1, klass) }
        .to raise_error(ArgumentError, "register_type takes either 3 arguments or a block")
    end

    it "raises RangeError for a type outside -128..127" do
      expect { unpacker.register_type(128) { |d| d } }.to raise_error(RangeError)
      expect { unpacker.register_type(-129) { |d| d } }.to raise_error(RangeError)
    end

    it "accepts -128 and 127" do
      unpacker.register_type(-128) { |_d| :lo }
      unpacker.register_type(127) { |_d| :hi }
      expect(unpacker.feed(bin("d4 80 00 d4 7f 00")).each.to_a).to eq(%i[lo hi])
    end

    it "raises FrozenError on a frozen unpacker", :since_1_5 do
      unpacker.freeze
      expect { unpacker.register_type(1) { |d| d } }
        .to raise_error(FrozenError, "can't modify frozen MessagePack::Unpacker")
    end

    it "lists registrations sorted by type" do
      unpacker.register_type(0x02, klass, :from_msgpack_ext)
      unpacker.register_type(0x01) { |d| d }
      list = unpacker.registered_types
      expect(list.map { |e| [e[:type], e[:class]] }).to eq([[1, nil], [2, klass]])
      expect(list.map { |e| e.keys.sort }.uniq).to eq([%i[class type unpacker]])
    end

    it "stores Procs as unpackers", :since_1_5 do
      unpacker.register_type(0x02, klass, :from_msgpack_ext)
      expect(unpacker.registered_types.first[:unpacker]).to be_a(Proc)
    end

    it "matches classes by equality only in type_registered?" do
      unpacker.register_type(0x02, klass, :from_msgpack_ext)
      expect(unpacker.type_registered?(2)).to be(true)
      expect(unpacker.type_registered?(3)).to be(false)
      expect(unpacker.type_registered?(klass)).to be(true)
      expect(unpacker.type_registered?(Class.new(klass))).to be(false)
      expect { unpacker.type_registered?(:x) }.to raise_error(ArgumentError, "class or type id")
    end

    it "does not affect the factory or other unpackers" do
      factory = MessagePack::Factory.new
      factory.register_type(1, klass)
      u1 = factory.unpacker
      u2 = factory.unpacker
      u1.register_type(2) { |d| d }
      expect(u1.registered_types.map { |e| e[:type] }).to eq([1, 2])
      expect(u2.registered_types.map { |e| e[:type] }).to eq([1])
      expect(factory.registered_types.map { |e| e[:type] }).to eq([1])
    end

    it "keeps registrations across reset" do
      unpacker.register_type(1) { |_d| :ok }
      unpacker.reset
      expect(unpacker.feed(bin("d4 01 00")).read).to eq(:ok)
    end
  end
end
