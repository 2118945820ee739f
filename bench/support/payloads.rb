# frozen_string_literal: true

# Deterministic payloads shared by bench/shapes.rb and bench/streaming.rb. Plain Ruby
# (no msgpack), built the same way in every process, so the packed bytes of both
# implementations can be compared by digest.
module Payloads
  module_function

  # An 11-field web-log record: strings and integers only.
  def log_record(i)
    {
      "ts" => 1_714_825_696_789 + (i * 137),
      "host" => "web-#{(i % 3) + 1}.example.internal",
      "method" => i.even? ? "GET" : "POST",
      "path" => "/api/v2/orders/#{48_213 + i}/items",
      "status" => [200, 200, 201, 304, 404][i % 5],
      "bytes" => 1_834 + (i * 71),
      "duration_us" => 12_750 + ((i * 7919) % 100_000),
      "remote_ip" => "203.0.113.#{i % 250}",
      "user_agent" => "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
      "request_id" => format("%08x-4b1d-4c3e-9f0a-%012x", 0x5eed0000 + i, 0xc0ffee + i),
      "referer" => i % 4 == 0 ? "" : "https://shop.example.com/cart?item=#{i % 97}",
    }
  end

  def records(n)
    Array.new(n) { |i| log_record(i) }
  end

  # A one-field map with a 150-byte ASCII string.
  def map1_str150
    { "message" => ("GET /api/v2/orders/48213/items 200 " * 5).byteslice(0, 150) }
  end

  # Integers over every msgpack width, 1/10 each, with the boundary values included.
  INT_RANGES = [
    0..127,                                           # positive fixint
    128..255,                                         # uint 8
    256..65_535,                                      # uint 16
    65_536..4_294_967_295,                            # uint 32
    4_294_967_296..18_446_744_073_709_551_615,        # uint 64 (Bignum above 2**62-1)
    -32..-1,                                          # negative fixint
    -128..-33,                                        # int 8
    -32_768..-129,                                    # int 16
    -2_147_483_648..-32_769,                          # int 32
    -9_223_372_036_854_775_808..-2_147_483_649,       # int 64
  ].freeze

  def integers(n = 10_000)
    rng = Random.new(7)
    ints = Array.new(n) { |i| rng.rand(INT_RANGES[i % INT_RANGES.size]) }
    INT_RANGES.each_with_index do |r, k|
      ints[k] = r.first
      ints[k + INT_RANGES.size] = r.last
    end
    ints
  end

  # Floats of every magnitude: fractions, large, tiny, integral, +-0.0, +-Infinity.
  def floats(n = 10_000)
    rng = Random.new(11)
    list = Array.new(n) do |i|
      case i % 6
      when 0 then rng.rand
      when 1 then (rng.rand * 2e6) - 1e6
      when 2 then rng.rand(-1e300..1e300)
      when 3 then rng.rand(-1e-300..1e-300)
      when 4 then (i * 0.25) - 500.0
      else rng.rand(-1e10..1e10).round(3)
      end
    end
    list[0, 4] = [0.0, -0.0, Float::INFINITY, -Float::INFINITY]
    list
  end

  # Nested records: arrays, maps, floats, booleans, nil.
  def nested_record(i, rng)
    {
      "id" => i,
      "name" => "item-#{i}",
      "active" => i.odd?,
      "deleted_at" => nil,
      "price" => (rng.rand * 1000).round(2),
      "ratio" => rng.rand,
      "tags" => Array.new(i % 5) { |k| "tag-#{k}" },
      "dims" => { "w" => rng.rand * 10, "h" => rng.rand * 10, "unit" => "cm", "rotated" => false },
      "history" => Array.new(3) do |k|
        { "at" => 1_700_000_000 + (k * 60) + i, "ok" => k.even?, "score" => [rng.rand, nil, k, -k * 1000] }
      end,
      "meta" => {
        "flags" => [true, false, nil],
        "parent" => i.zero? ? nil : { "id" => i - 1, "path" => ["root", "n#{i % 7}", nil], "weight" => -1.5 * i },
        "matrix" => [[1.0, 0.0], [0.0, 1.0]],
      },
    }
  end

  def nested(n = 200)
    rng = Random.new(3)
    Array.new(n) { |i| nested_record(i, rng) }
  end

  # A map with one 1 MiB binary (ASCII-8BIT) string.
  def bin_1mib
    { "data" => Random.new(42).bytes(1 << 20) }
  end

  ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz0123456789 ",
    "aeiouéèêàçüöñß ",
    "дерево сеть данные ",
    "日本語の文字列テキスト中文",
    "😀🚀✨🎉 ok ",
  ].freeze
  STRING_CHARS = [0, 1, 3, 8, 15, 16, 31, 40, 64, 100, 150, 255, 300].freeze

  # UTF-8 strings of varying length (0 to ~1,200 bytes); 4 of 5 contain non-ASCII.
  def utf8_strings(n = 2_000)
    rng = Random.new(5)
    Array.new(n) do |i|
      chars = ALPHABETS[i % ALPHABETS.size].chars
      len = STRING_CHARS[rng.rand(STRING_CHARS.size)]
      Array.new(len) { chars[rng.rand(chars.size)] }.join.force_encoding(Encoding::UTF_8)
    end
  end

  # name => object, in table order.
  def shapes
    {
      "map1_str150" => map1_str150,
      "log_record" => log_record(0),
      "records_1000" => records(1_000),
      "ints_10000" => integers,
      "floats_10000" => floats,
      "nested_200" => nested,
      "bin_1mib" => bin_1mib,
      "utf8_strings_2000" => utf8_strings,
    }
  end
end
