/* Hexadecimal digits, either case, for the parsers of guest and peer text
 * (HTTP percent escapes, MMDS tokens). */
#ifndef KVMINI_CORE_HEX_H
#define KVMINI_CORE_HEX_H

/* The value of one hex digit, or -1 when @c is not one. */
static inline int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
