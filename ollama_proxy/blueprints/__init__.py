"""The surfaces the proxy serves, one blueprint each."""
