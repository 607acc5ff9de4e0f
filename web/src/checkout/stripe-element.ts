/**
 * Real Stripe: Stripe.js and the Payment Element. This module (and `@stripe/stripe-js`, which
 * fetches https://js.stripe.com/ when `loadStripe` is called) is only imported when the config has
 * a publishable key and no `stripeApiBase`; the local mode never loads it.
 */
import { loadStripe } from '@stripe/stripe-js/pure';
import type { ConfirmResult } from './payment';

export interface MountedPaymentElement {
  confirm(returnUrl: string): Promise<ConfirmResult>;
  retrieve(): Promise<{ status: string }>;
  destroy(): void;
}

export async function mountPaymentElement(publishableKey: string, clientSecret: string, container: HTMLElement): Promise<MountedPaymentElement> {
  const stripe = await loadStripe(publishableKey);
  if (!stripe) throw new Error('Stripe.js could not be loaded');
  const elements = stripe.elements({ clientSecret });
  const element = elements.create('payment');
  element.mount(container);
  return {
    async confirm(returnUrl) {
      const r = await stripe.confirmPayment({ elements, confirmParams: { return_url: returnUrl }, redirect: 'if_required' });
      if (r.error) {
        const declined = r.error.type === 'card_error';
        return {
          status: r.error.payment_intent?.status ?? null,
          declined,
          // A validation error (incomplete card number…) is shown by the Element itself too.
          error: declined ? null : (r.error.message ?? 'The payment could not be confirmed.'),
        };
      }
      return { status: r.paymentIntent.status, declined: false, error: null };
    },
    async retrieve() {
      const r = await stripe.retrievePaymentIntent(clientSecret);
      if (r.error || !r.paymentIntent) throw new Error(r.error?.message ?? 'no PaymentIntent');
      return { status: r.paymentIntent.status };
    },
    destroy() {
      element.destroy();
    },
  };
}

/** After a redirect-based payment method, Stripe returns to `return_url` with these. */
export async function retrieverFor(publishableKey: string, clientSecret: string): Promise<() => Promise<{ status: string }>> {
  const stripe = await loadStripe(publishableKey);
  if (!stripe) throw new Error('Stripe.js could not be loaded');
  return async () => {
    const r = await stripe.retrievePaymentIntent(clientSecret);
    if (r.error || !r.paymentIntent) throw new Error(r.error?.message ?? 'no PaymentIntent');
    return { status: r.paymentIntent.status };
  };
}
