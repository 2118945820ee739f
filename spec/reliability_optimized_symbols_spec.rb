# frozen_string_literal: true

require "tmpdir"
require "stringio"

# Reliability finding 6: Factory#load ignored optimized_symbols_parsing. After
# `register_type(0, Symbol, optimized_symbols_parsing: true)` with no unpacker proc,
# `f.unpacker.feed(data).read` gave :hello but `f.load(data)` raised UnknownExtTypeError.
# Now every entry point gives the same answer, and invalid UTF-8 raises EncodingError
# there, as in the C gem.

module OptimizedSymbolsSpec
  # name => ->(factory, bytes, dir) { value } for every way to decode with a factory.
  ENTRY_POINTS = {
    "Factory#load" => ->(f, data, _) { f.load(data) },
    "Factory#unpack" => ->(f, data, _) { f.unpack(data) },
    "Factory#load (frozen factory)" => ->(f, data, _) { f.dup.freeze.load(data) },
    "Factory#dup.load" => ->(f, data, _) { f.dup.load(data) },
    "unpacker.feed.read" => ->(f, data, _) { f.unpacker.feed(data).read },
    "unpacker.feed_reference.full_unpack" => ->(f, data, _) { f.unpacker.feed_reference(data).full_unpack },
    "unpacker(options).feed_each, byte by byte" => lambda do |f, data, _|
      u = f.unpacker(freeze: true)
      data.each_char.flat_map { |c| u.feed_each(c).to_a }.first
    end,
    "unpacker(StringIO).read" => ->(f, data, _) { f.unpacker(StringIO.new(data)).read },
    "unpacker(pipe).each" => lambda do |f, data, _|
      r, w = IO.pipe
      w.write(data)
      w.close
      f.unpacker(r).each.first.tap { r.close }
    end,
    "pool.load" => ->(f, data, _) { f.pool(2, allow_unknown_ext: false).load(data) },
    "pool.unpacker" => ->(f, data, _) { f.pool.unpacker { |u| u.feed(data).read } },
    "Factory#load_file (mapped)" => ->(f, data, dir) { f.load_file(write(dir, data)) },
    "Factory#open_file.read" => ->(f, data, dir) { f.open_file(write(dir, data)) { |u| u.read } },
    "Factory#open_file.each" => ->(f, data, dir) { f.open_file(write(dir, data)).each.first },
  }.freeze

  def self.write(dir, data)
    path = File.join(dir, "sym-#{data.unpack1('H*')[0, 40]}.msgpack")
    File.binwrite(path, data)
    path
  end

  def self.bin(hex) = [hex.delete(" ")].pack("H*").b

  INVALID = "\xD4\x00\xFF".b
  INVALID_MESSAGE = %(invalid symbol in encoding UTF-8 :"\\xFF")
end

RSpec.describe "Reliability: optimized_symbols_parsing at every entry point (finding 6)", if: !MSGPACK_SPEC_ORACLE do
  around do |example|
    Dir.mktmpdir("msgpack-osp") do |dir|
      @dir = dir
      example.run
    end
  end

  def bin(hex) = OptimizedSymbolsSpec.bin(hex)

  # Registration variants: no proc at all (the reported case), with both procs, with a
  # proc that must not be called for type 0.
  registrations = {
    "no unpacker proc" => ->(f) { f.register_type(0, Symbol, optimized_symbols_parsing: true) },
    "packer and unpacker procs" => lambda { |f|
      f.register_type(0, Symbol, packer: :to_msgpack_ext, unpacker: :from_msgpack_ext, optimized_symbols_parsing: true)
    },
  }

  payloads = {
    "fixext 1" => ["d4 00 61", :a],
    "fixext 4" => ["d6 00 68 6f 6c 61", :hola],
    "fixext 16" => ["d8 00" + " 61" * 16, :"#{'a' * 16}"],
    "ext 8" => ["c7 05 00 68 65 6c 6c 6f", :hello],
    "ext 8, empty" => ["c7 00 00", :""],
    "ext 16, UTF-8" => ["c8 00 05 00 66 c3 a9 65 73", :"fées"],
    "in an Array and a Hash" => ["92 d4 00 61 81 a1 6b d5 00 78 79", [:a, { "k" => :xy }]],
  }

  registrations.each do |reg_name, register|
    describe "registered with #{reg_name}" do
      let(:factory) { MessagePack::Factory.new.tap { |f| register.call(f) } }

      payloads.each do |payload_name, (hex, want)|
        it "decodes #{payload_name} to #{want.inspect} at every entry point" do
          data = bin(hex)
          got = OptimizedSymbolsSpec::ENTRY_POINTS.transform_values do |entry|
            entry.call(factory, data, @dir)
          rescue StandardError => e
            e.class
          end
          expect(got).to eq(OptimizedSymbolsSpec::ENTRY_POINTS.transform_values { want })
          expect(got.values.flatten.grep(Symbol).map(&:encoding).uniq - [Encoding::US_ASCII, Encoding::UTF_8]).to eq([])
        end
      end

      it "raises EncodingError for invalid UTF-8 (d4 00 ff) at every entry point" do
        got = OptimizedSymbolsSpec::ENTRY_POINTS.transform_values do |entry|
          entry.call(factory, OptimizedSymbolsSpec::INVALID, @dir)
          :no_error
        rescue EncodingError => e
          e.message
        end
        expect(got.values.uniq).to eq([OptimizedSymbolsSpec::INVALID_MESSAGE])
      end

      it "goes on with the next object after the EncodingError" do
        u = factory.unpacker
        u.feed(bin("92 d4 00 ff 01") + bin("d4 00 62"))
        expect { u.read }.to raise_error(EncodingError)
        expect(u.read).to equal(:b)
        m = factory.open_file(OptimizedSymbolsSpec.write(@dir, bin("d4 00 ff d4 00 63")))
        expect { m.read }.to raise_error(EncodingError)
        expect(m.read).to equal(:c)
        m.close
      end
    end
  end

  it "other ext types of such a factory still go through their procs, and unknown ones still raise" do
    f = MessagePack::Factory.new
    f.register_type(0, Symbol, optimized_symbols_parsing: true)
    f.register_type(1, Struct.new(:s), packer: ->(_) { "" }, unpacker: ->(d) { "one:#{d}" })
    data = bin("93 d4 00 61 d4 01 62 d4 00 63")
    OptimizedSymbolsSpec::ENTRY_POINTS.each do |name, entry|
      expect(entry.call(f, data, @dir)).to eq([:a, "one:b", :c]), name
      expect { entry.call(f, bin("d4 05 00"), @dir) }.to raise_error(MessagePack::UnknownExtTypeError), name
    end
  end

  it "on DefaultFactory (child process): MessagePack.unpack, load, load_file and Unpacker.new agree" do
    result = child_json(<<~'RUBY')
      require "tmpdir"
      MessagePack::DefaultFactory.register_type(0, Symbol, optimized_symbols_parsing: true)
      data = "\x92\xc7\x05\x00hello\xd4\x00a".b
      path = File.join(Dir.mktmpdir, "default.msgpack")
      File.binwrite(path, data)
      got = [MessagePack.unpack(data), MessagePack.load(data), MessagePack.load_file(path),
             MessagePack::DefaultFactory.unpacker.feed(data).read, MessagePack.unpack(data, symbolize_keys: true)]
      plain = (MessagePack::Unpacker.new.feed(data).read rescue $!.class.name) # not from the factory
      Probe.report("got" => got.map { |v| v.map(&:inspect) }, "plain" => plain.to_s)
    RUBY
    expect(result["got"].uniq).to eq([[":hello", ":a"]])
    expect(result["plain"]).to eq("MessagePack::UnknownExtTypeError")
  end

  # The C gem lists a registration made without procs (register_type(0, Symbol,
  # optimized_symbols_parsing: true), or register_type(1, Foo, {})) in registered_types
  # (packer: nil, unpacker: nil) and type_registered? finds it; msgpack-rs leaves it out.
  it "lists a registration that has no procs in registered_types, as the C gem does" do
    f = MessagePack::Factory.new
    f.register_type(0, Symbol, optimized_symbols_parsing: true)
    expect(f.registered_types).to eq([{ type: 0, class: Symbol, packer: nil, unpacker: nil }])
    expect(f.type_registered?(Symbol)).to be(true)
    expect(f.type_registered?(0)).to be(true)
  end

  describe "cross-check with the C gem (MSGPACK_RS_ORACLE_RUBY)" do
    it "gives the same values and errors for the in-memory entry points" do
      version = ReentrancyDoc.oracle_version
      skip "needs the C gem 1.8 (the Ruby 3.4 chroot of script/rubies); found #{version.inspect}" unless version && version >= Gem::Version.new("1.8")

      script = <<~'RUBY'
        require "msgpack"
        require "stringio"
        f = MessagePack::Factory.new
        f.register_type(0, Symbol, optimized_symbols_parsing: true)
        inputs = ["c7 05 00 68 65 6c 6c 6f", "92 d4 00 61 81 a1 6b d5 00 78 79", "c7 00 00", "d4 00 ff"]
        out = inputs.map do |hex|
          data = [hex.delete(" ")].pack("H*")
          [->(d) { f.load(d) }, ->(d) { f.unpacker.feed(d).read }, ->(d) { f.unpacker(StringIO.new(d)).read },
           ->(d) { f.pool.load(d) }].map { |e| begin; e.call(data); rescue StandardError => x; "#{x.class}: #{x.message}"; end }
        end
        puts Marshal.dump(out).unpack1("H*")
      RUBY
      require "open3"
      env = { "RUBYLIB" => nil, "RUBYOPT" => nil, "GEM_HOME" => nil }
      theirs_hex, err, status = Open3.capture3(env, ReentrancyDoc.oracle_ruby, "-e", script, chdir: "/")
      expect(status).to be_success, err
      ours_hex, err, status = run_isolated_ruby(script)
      expect(status).to be_success, err
      expect(Marshal.load([ours_hex.strip].pack("H*"))).to eq(Marshal.load([theirs_hex.strip].pack("H*")))
    end
  end
end
