# frozen_string_literal: true

module MessageHelpers
  # An exact-match Regexp for an error message that quotes a C type the way Ruby's own
  # messages do: `unsigned long long' up to Ruby 3.3, 'unsigned long long' from 3.4 on.
  # Write the message with the old quotes; only the opening quote may vary.
  #
  #   raise_error(RangeError, either_quote("integer 128 too big to convert to `signed char'"))
  def either_quote(message)
    /\A#{Regexp.escape(message).gsub("`", "[`']")}\z/
  end
end
