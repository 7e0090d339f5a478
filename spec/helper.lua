-- Loaded by busted before every spec (--helper): makes spec/support/ requirable.
package.path = "spec/?.lua;" .. package.path
