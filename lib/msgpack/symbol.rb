# frozen_string_literal: true

# Used once Symbol is registered as an ext type, e.g. DefaultFactory.register_type(0, Symbol).
# Without a registration Symbols are packed as plain strings.
class Symbol
  # The payload is the symbol's name. Symbol#name returns a cached frozen String.
  if method_defined?(:name)
    alias_method :to_msgpack_ext, :name
  else
    alias_method :to_msgpack_ext, :to_s
  end

  # Reads the payload as UTF-8, or as binary when it is not valid UTF-8.
  # Like the C gem, this retags +data+ itself rather than a copy.
  def self.from_msgpack_ext(data)
    data.force_encoding(Encoding::UTF_8).to_sym
  rescue EncodingError
    data.force_encoding(Encoding::BINARY).to_sym
  end
end
